package admin

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/buildinfo"
	"github.com/tokenproxy/tokenproxy/proxy"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

func routesConfig(t *testing.T, names ...string) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("routes:\n")
	for _, n := range names {
		b.WriteString("  - {name: " + n + ", hosts: [" + n + ".example], tokenUrl: \"https://auth.example/token\", clientId: " + n + ", clientSecret: s}\n")
	}
	cfg, err := config.Parse("routes.yaml", []byte(b.String()), config.LoadOptions{})
	require.NoError(t, err)
	return cfg
}

// zeroSeries are the samples alerts use with increase(), as a route with no event yet shows them.
func zeroSeries(route string) []string {
	return []string{
		`tokenproxy_errors_total{kind="token",route="` + route + `"} 0`,
		`tokenproxy_errors_total{kind="upstream",route="` + route + `"} 0`,
		`tokenproxy_errors_total{kind="policy",route="` + route + `"} 0`,
		`tokenproxy_replays_total{route="` + route + `"} 0`,
		`tokenproxy_token_refusal_backoffs_total{route="` + route + `"} 0`,
	}
}

// The series alerts watch exist at zero for every route in service from the start and after each reload,
// so the first event after either is an increase; a reload keeps the counts of the routes it keeps and
// drops every series of the routes it removes. Read from the /metrics text of a real proxy's metrics.
func TestAlertSeriesStartAtZeroForEveryRouteInService(t *testing.T) {
	m := NewMetrics(buildinfo.Read())
	srv, err := proxy.New(routesConfig(t, "a", "b"), proxy.Options{Metrics: m})
	require.NoError(t, err)
	h := New(srv, m, slog.New(slog.NewTextHandler(io.Discard, nil))).Handler()
	// scrape returns the samples of /metrics, one line each; a failed check names the line, not the page.
	scrape := func() map[string]bool {
		t.Helper()
		code, body := get(t, h, "/metrics")
		require.Equal(t, http.StatusOK, code)
		samples := map[string]bool{}
		for _, line := range strings.Split(body, "\n") {
			if !strings.HasPrefix(line, "#") {
				samples[line] = true
			}
		}
		return samples
	}
	// of lists the samples of a route.
	of := func(samples map[string]bool, route string) []string {
		var list []string
		for s := range samples {
			if strings.Contains(s, `route="`+route+`"`) {
				list = append(list, s)
			}
		}
		return list
	}

	body := scrape()
	for _, line := range append(zeroSeries("a"), zeroSeries("b")...) {
		assert.True(t, body[line], "missing %s", line)
	}
	for _, line := range []string{`tokenproxy_errors_total{kind="upstream",route="-"} 0`, `tokenproxy_errors_total{kind="policy",route="-"} 0`} {
		assert.True(t, body[line], "missing %s (hosts of no route)", line)
	}

	// Traffic on both routes, then a reload that keeps b, removes a and adds c.
	for _, r := range []string{"a", "b"} {
		m.Request(r, http.StatusBadGateway, time.Millisecond)
		m.Error(r, proxy.StepToken)
		m.TokenFetched(r, "status", time.Millisecond)
		m.Replay(r)
		m.RefusalBackoff(r)
	}
	require.NoError(t, srv.Swap(routesConfig(t, "b", "c")))
	body = scrape()
	assert.Empty(t, of(body, "a"), "no series of a removed route")
	for _, line := range zeroSeries("c") {
		assert.True(t, body[line], "missing %s", line)
	}
	for _, line := range []string{
		`tokenproxy_errors_total{kind="token",route="b"} 1`,
		`tokenproxy_errors_total{kind="upstream",route="b"} 0`,
		`tokenproxy_replays_total{route="b"} 1`,
		`tokenproxy_token_refusal_backoffs_total{route="b"} 1`,
		`tokenproxy_requests_total{code="502",route="b"} 1`,
	} {
		assert.True(t, body[line], "missing %s: a reload does not reset the routes it keeps", line)
	}

	// A request that ran on the old configuration may still count for a; the next reload drops it again.
	m.Error("a", proxy.StepUpstream)
	require.NoError(t, srv.Swap(routesConfig(t, "b", "c")))
	assert.Empty(t, of(scrape(), "a"))

	// A route that comes back starts at zero again.
	require.NoError(t, srv.Swap(routesConfig(t, "a")))
	body = scrape()
	for _, line := range zeroSeries("a") {
		assert.True(t, body[line], "missing %s", line)
	}
	assert.Empty(t, of(body, "b"))
	assert.Empty(t, of(body, "c"))
}

// The series every request counts go through children kept per route: they appear with the first request
// (not before), a reload keeps those of the routes it keeps, and a route that comes back after a reload
// removed it counts into new series, not into the children of the series that reload dropped.
func TestRequestSeriesAcrossReloads(t *testing.T) {
	m := NewMetrics(buildinfo.Read())
	samples := func() map[string]bool {
		t.Helper()
		code, body := get(t, m.Handler(), "/metrics")
		require.Equal(t, http.StatusOK, code)
		got := map[string]bool{}
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "tokenproxy_requests_total") || strings.HasPrefix(line, "tokenproxy_token_cache_total") ||
				strings.HasPrefix(line, "tokenproxy_request_duration_seconds_count") {
				got[line] = true
			}
		}
		return got
	}
	m.RoutesInService([]string{"a", "b"})
	assert.Empty(t, samples(), "no request, no series")

	m.TokenLookup("a", tokensource.ViaHit)
	m.TokenLookup("a", tokensource.ViaHit)
	m.TokenLookup("a", tokensource.ViaFetch)
	m.Request("a", http.StatusOK, time.Millisecond)
	m.Request("a", http.StatusOK, time.Millisecond)
	m.Request("a", http.StatusNotFound, time.Millisecond)
	m.Request("-", http.StatusBadGateway, time.Millisecond)
	assert.Equal(t, map[string]bool{
		`tokenproxy_requests_total{code="200",route="a"} 2`:        true,
		`tokenproxy_requests_total{code="404",route="a"} 1`:        true,
		`tokenproxy_requests_total{code="502",route="-"} 1`:        true,
		`tokenproxy_request_duration_seconds_count{route="a"} 3`:   true,
		`tokenproxy_request_duration_seconds_count{route="-"} 1`:   true,
		`tokenproxy_token_cache_total{result="hit",route="a"} 2`:   true,
		`tokenproxy_token_cache_total{result="fetch",route="a"} 1`: true,
	}, samples())

	m.RoutesInService([]string{"b"}) // a goes, and every series of it
	m.RoutesInService([]string{"a", "b"})
	m.TokenLookup("a", tokensource.ViaHit)
	m.Request("a", http.StatusOK, time.Millisecond)
	m.Request("-", http.StatusBadGateway, time.Millisecond)
	assert.Equal(t, map[string]bool{
		`tokenproxy_requests_total{code="200",route="a"} 1`:      true,
		`tokenproxy_requests_total{code="502",route="-"} 2`:      true,
		`tokenproxy_request_duration_seconds_count{route="a"} 1`: true,
		`tokenproxy_request_duration_seconds_count{route="-"} 2`: true,
		`tokenproxy_token_cache_total{result="hit",route="a"} 1`: true,
	}, samples())
}

// BenchmarkRequestMetrics is what a matched request with a cached token costs the metrics.
//
//	go test ./admin -run '^$' -bench RequestMetrics -benchmem
func BenchmarkRequestMetrics(b *testing.B) {
	m := NewMetrics(buildinfo.Read())
	m.RoutesInService([]string{"orders", "billing", "shipping"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.TokenLookup("orders", tokensource.ViaHit)
			m.Request("orders", http.StatusOK, time.Millisecond)
		}
	})
}
