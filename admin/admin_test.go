package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/buildinfo"
	"github.com/tokenproxy/tokenproxy/proxy"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

type fakeSource struct {
	ready  atomic.Bool
	routes []proxy.RouteStatus
}

func (f *fakeSource) Ready() bool                 { return f.ready.Load() }
func (f *fakeSource) Status() []proxy.RouteStatus { return f.routes }
func (f *fakeSource) CertificatesCached() int     { return 3 }

func (f *fakeSource) StoreStatus() proxy.StoreStatus {
	return proxy.StoreStatus{Kind: "redis", Where: "redis://store.example:6379/0", Healthy: true}
}

// FleetStatus shows a hold another replica put on the last route, so /routes can be seen to ask for it.
func (f *fakeSource) FleetStatus(context.Context) []proxy.RouteStatus {
	routes := append([]proxy.RouteStatus(nil), f.routes...)
	held := time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)
	routes[len(routes)-1].Token.RefusalsBackedOffUntil = &held
	return routes
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Body)
	return rec.Code, string(body)
}

func TestEndpoints(t *testing.T) {
	left := 42.5
	until := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	src := &fakeSource{routes: []proxy.RouteStatus{
		{Name: "orders", Hosts: []string{"api.example"}, TokenURL: "https://auth.example/token", AuthStyle: "body",
			Cache: true, Token: proxy.TokenStatus{Fingerprint: "0badf00d", ExpiresInSeconds: &left}},
		{Name: "broken", Hosts: []string{"b.example"}, TokenURL: "https://auth.example/token", AuthStyle: "auto",
			Token: proxy.TokenStatus{LastError: "answered 401", BackedOffUntil: &until}},
	}}
	m := NewMetrics(buildinfo.Read())
	h := New(src, m, slog.New(slog.NewTextHandler(io.Discard, nil))).Handler()

	code, body := get(t, h, "/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
	code, _ = get(t, h, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code, "not ready until the source says so")
	src.ready.Store(true)
	code, body = get(t, h, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ready\n", body)

	code, body = get(t, h, "/routes")
	require.Equal(t, http.StatusOK, code)
	var routes struct {
		Store  proxy.StoreStatus
		Routes []proxy.RouteStatus
	}
	require.NoError(t, json.Unmarshal([]byte(body), &routes))
	assert.Equal(t, src.StoreStatus(), routes.Store)
	assert.Equal(t, src.FleetStatus(context.Background()), routes.Routes, "the fleet's view, the store asked")

	m.Request("orders", 200, 10*time.Millisecond)
	m.Request("orders", 200, 20*time.Millisecond)
	m.Request("-", 403, time.Millisecond)
	m.Error("-", proxy.StepPolicy)
	m.Denied("credentials")
	m.TokenLookup("orders", tokensource.ViaHit)
	m.TokenFetched("orders", "ok", 5*time.Millisecond)
	m.Replay("orders")
	m.ConnectionOpened(proxy.ConnIntercepted)
	m.ConnectionOpened(proxy.ConnIntercepted)
	m.ConnectionClosed(proxy.ConnIntercepted)
	m.ConfigReloaded(false, time.Now())
	m.ConfigReloaded(true, time.Unix(1_800_000_000, 0))

	assert.Equal(t, 2.0, testutil.ToFloat64(m.requests.WithLabelValues("orders", "200")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues("-", "403")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.errors.WithLabelValues("-", "policy")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.denials.WithLabelValues("credentials")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.lookups.WithLabelValues("orders", "hit")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.fetches.WithLabelValues("orders", "ok")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.replays.WithLabelValues("orders")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.connections.WithLabelValues("intercepted")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.reloads.WithLabelValues("failure")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.reloads.WithLabelValues("success")))
	assert.Equal(t, 1_800_000_000.0, testutil.ToFloat64(m.lastReload))

	code, body = get(t, h, "/metrics")
	require.Equal(t, http.StatusOK, code)
	for _, line := range []string{
		`tokenproxy_token_expiry_seconds{route="orders"} 42.5`,
		`tokenproxy_token_backoff{route="orders"} 0`,
		`tokenproxy_token_backoff{route="broken"} 1`,
		`tokenproxy_certificates_cached 3`,
		`tokenproxy_request_duration_seconds_count{route="orders"} 2`,
	} {
		assert.Contains(t, body, line+"\n")
	}
	assert.NotContains(t, body, `tokenproxy_token_expiry_seconds{route="broken"}`, "no token, no sample")
	assert.NotContains(t, body, "0badf00d", "fingerprints stay out of metrics")
	assert.True(t, strings.Contains(body, "go_goroutines") && strings.Contains(body, "process_cpu_seconds_total"))

	code, _ = get(t, h, "/nothing")
	assert.Equal(t, http.StatusNotFound, code)
}
