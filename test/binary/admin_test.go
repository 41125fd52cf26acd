package binary

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

func scrape(t *testing.T, admin string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(raw)))
	require.NoError(t, err)
	return families, string(raw)
}

// value returns the value of the sample of family name whose labels include labels; -1 when absent.
func value(families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := families[name]
	if !ok {
		return -1
	}
samples:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue samples
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// knownTraffic is a running binary after six requests of known outcome, through one app connection kept
// open: three to a route (a token fetched, then two hits), one to a route whose token endpoint is down, one
// to a host of no route that refuses connections, one to a host of no route that answers.
type knownTraffic struct {
	r        *running
	app      *http.Client
	tokens   *testkit.TokenServer
	supplier *testkit.Upstream
	started  time.Time
	fp       string // the fingerprint of the route's one token
}

func sendKnownTraffic(t *testing.T) *knownTraffic {
	tokens := newOpsTokens(t, map[string]string{opsSecret: "tok-a"})
	supplier, other := authEcho(t), authEcho(t)
	config := writeFile(t, t.TempDir(), "routes.yaml", fmt.Sprintf(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
routes:
  - name: supplier
    hosts: ["%s"]
    tokenUrl: %s/token?tenant=hidden-query
    clientId: ops
    clientSecret: ${OPS_SECRET}
    authStyle: body
  - name: broken
    hosts: [broken.test]
    tokenUrl: %s/down
    clientId: ops
    clientSecret: ${OPS_SECRET}
    authStyle: body
`, supplier.Listener.Addr(), tokens.URL, tokens.URL))
	k := &knownTraffic{tokens: tokens, supplier: supplier, started: time.Now(), fp: tokensource.Fingerprint("tok-a-1")}
	k.r = start(t, config, "OPS_SECRET="+opsSecret)
	require.NotEmpty(t, k.r.admin)
	k.app = proxyClient(k.r.addr)
	for range 3 {
		status, body := getBody(t, k.app, supplier.URL+"/x?order=query-value-93")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "auth=Bearer tok-a-1", body)
	}
	status, _ := getBody(t, k.app, "http://broken.test/")
	require.Equal(t, http.StatusBadGateway, status)
	dead := freeAddr(t) // an unmatched host that refuses connections: an upstream failure
	status, _ = getBody(t, k.app, "http://"+dead+"/gone")
	require.Equal(t, http.StatusBadGateway, status)
	status, _ = getBody(t, k.app, other.URL+"/")
	require.Equal(t, http.StatusOK, status)
	testkit.WaitFor(t, "a request line for each request", func() bool { return k.r.countLog(`"msg":"request"`) == 6 })
	return k
}

// The admin endpoints after known traffic: every series at its value, the app's connection counted in and
// out, one JSON line per request, the routes in service, liveness; no secret, token or query anywhere.
func TestAdminEndpointsAfterKnownTraffic(t *testing.T) {
	k := sendKnownTraffic(t)
	t.Run("metrics", k.metrics)
	t.Run("connections", k.connections)
	t.Run("request lines", k.requestLines)
	t.Run("routes", k.routes)
	t.Run("healthz", k.healthz)
	require.NoError(t, k.r.stop(t))
}

func (k *knownTraffic) metrics(t *testing.T) {
	m, raw := scrape(t, k.r.admin)
	assert.Equal(t, 3.0, value(m, "tokenproxy_requests_total", "route", "supplier", "code", "200"))
	assert.Equal(t, 1.0, value(m, "tokenproxy_requests_total", "route", "-", "code", "200"))
	assert.Equal(t, 1.0, value(m, "tokenproxy_requests_total", "route", "broken", "code", "502"))
	assert.Equal(t, 3.0, value(m, "tokenproxy_request_duration_seconds", "route", "supplier"))
	assert.Equal(t, 1.0, value(m, "tokenproxy_errors_total", "route", "broken", "kind", "token"))
	assert.Equal(t, 1.0, value(m, "tokenproxy_requests_total", "route", "-", "code", "502"))
	assert.Equal(t, 1.0, value(m, "tokenproxy_errors_total", "route", "-", "kind", "upstream"))
	assert.Equal(t, 0.0, value(m, "tokenproxy_errors_total", "route", "supplier", "kind", "token"), "no failure: zero, ready for increase()")
	assert.Equal(t, 1.0, value(m, "tokenproxy_token_fetches_total", "route", "supplier", "result", "ok"))
	assert.Equal(t, 1.0, value(m, "tokenproxy_token_fetches_total", "route", "broken", "result", "status"))
	assert.Equal(t, 1.0, value(m, "tokenproxy_token_fetch_duration_seconds", "route", "supplier"))
	assert.Equal(t, 1.0, value(m, "tokenproxy_token_cache_total", "route", "supplier", "result", "fetch"))
	assert.Equal(t, 2.0, value(m, "tokenproxy_token_cache_total", "route", "supplier", "result", "hit"))
	expiry := value(m, "tokenproxy_token_expiry_seconds", "route", "supplier")
	assert.True(t, expiry > 500 && expiry <= 600, "expiry %v", expiry)
	assert.Equal(t, -1.0, value(m, "tokenproxy_token_expiry_seconds", "route", "broken"), "no token, no sample")
	assert.Equal(t, 0.0, value(m, "tokenproxy_token_backoff", "route", "supplier"))
	assert.Equal(t, 1.0, value(m, "tokenproxy_token_backoff", "route", "broken"))
	assert.Equal(t, 0.0, value(m, "tokenproxy_replays_total", "route", "supplier"), "no replay happened")
	assert.Equal(t, 0.0, value(m, "tokenproxy_connections", "kind", "intercepted"))
	assert.Equal(t, 0.0, value(m, "tokenproxy_connections", "kind", "tunnel"))
	assert.Equal(t, 0.0, value(m, "tokenproxy_certificates_cached"))
	assert.Equal(t, 0.0, value(m, "tokenproxy_config_reloads_total", "result", "success"))
	assert.Equal(t, 0.0, value(m, "tokenproxy_config_reloads_total", "result", "failure"))
	assert.GreaterOrEqual(t, value(m, "tokenproxy_config_last_reload_success_timestamp_seconds"), float64(k.started.Unix()))
	assert.Equal(t, 1.0, value(m, "tokenproxy_build_info"))
	assert.Positive(t, value(m, "go_goroutines"), "the Go collector")
	assert.Positive(t, value(m, "process_resident_memory_bytes"), "the process collector")
	for _, secret := range []string{opsSecret, "tok-a-1", k.fp, "hidden-query", "query-value-93"} {
		assert.NotContains(t, raw, secret)
	}
}

// The app's keep-alive connection, and no other, is counted while it is open, and counted out once the
// app closes it.
func (k *knownTraffic) connections(t *testing.T) {
	plain := func(want float64) func() bool {
		return func() bool {
			m, _ := scrape(t, k.r.admin)
			return value(m, "tokenproxy_connections", "kind", "plain") == want
		}
	}
	testkit.WaitFor(t, "the app's keep-alive connection, and no other, counted", plain(1))
	k.app.CloseIdleConnections()
	testkit.WaitFor(t, "the connection counted out once the app closed it", plain(0))
}

// The request lines in JSON: duration_ms and the byte counts are numbers, the path has no query, and token
// and token_fp appear only when a token was sent.
func (k *knownTraffic) requestLines(t *testing.T) {
	var lines []map[string]any
	for _, l := range strings.Split(k.r.logs(), "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(l), &line) == nil && line["msg"] == "request" {
			lines = append(lines, line)
		}
	}
	require.Len(t, lines, 6)
	assert.NotContains(t, k.r.logs(), "query-value-93", "the query never reaches the log")
	for i, want := range []struct {
		route, path            string
		status                 float64
		received               float64
		token, tokenFP, failed string
	}{
		{"supplier", "/x", 200, float64(len("auth=Bearer tok-a-1")), "fetch", k.fp, ""},
		{"supplier", "/x", 200, float64(len("auth=Bearer tok-a-1")), "hit", k.fp, ""},
		{"supplier", "/x", 200, float64(len("auth=Bearer tok-a-1")), "hit", k.fp, ""},
		{"broken", "/", 502, -1, "", "", "token"},
		{"-", "/gone", 502, -1, "", "", "upstream"},
		{"-", "/", 200, float64(len("auth=")), "", "", ""},
	} {
		var line map[string]any // the first line not taken yet with this route and path: the order of the requests
		for j, l := range lines {
			if l != nil && l["route"] == want.route && l["path"] == want.path {
				line, lines[j] = l, nil
				break
			}
		}
		require.NotNil(t, line, "line %d: no line of route %s with path %s", i, want.route, want.path)
		assert.Equal(t, want.status, line["status"], "line %d: %v", i, line)
		assert.IsType(t, float64(0), line["duration_ms"], "line %d: a JSON number: %v", i, line)
		if d, ok := line["duration_ms"].(float64); ok {
			assert.True(t, d > 0 && d < 20_000, "line %d: duration_ms %v, milliseconds", i, d)
		}
		assert.Equal(t, 0.0, line["bytes_sent"], "line %d: a JSON number: %v", i, line)
		if want.received >= 0 {
			assert.Equal(t, want.received, line["bytes_received"], "line %d: a JSON number: %v", i, line)
		} else {
			assert.IsType(t, float64(0), line["bytes_received"], "line %d: a JSON number: %v", i, line)
		}
		assert.NotContains(t, line, "duration", "line %d: no bare nanoseconds", i)
		if want.tokenFP != "" {
			assert.Equal(t, want.token, line["token"], "line %d: %v", i, line)
			assert.Equal(t, want.tokenFP, line["token_fp"], "line %d: %v", i, line)
		} else {
			assert.NotContains(t, line, "token", "line %d: no token sent", i)
			assert.NotContains(t, line, "token_fp", "line %d: no token sent", i)
		}
		if want.failed != "" {
			assert.Equal(t, want.failed, line["failed"], "line %d: %v", i, line)
		} else {
			assert.NotContains(t, line, "failed", "line %d", i)
		}
	}
}

// /routes shows each route's settings and its token's state, without a secret, a token or the token
// URL's query.
func (k *knownTraffic) routes(t *testing.T) {
	resp, err := http.Get("http://" + k.r.admin + "/routes")
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var routes struct {
		Routes []struct {
			Name, TokenURL, AuthStyle string
			Hosts                     []string
			Token                     struct {
				Fingerprint      string
				ExpiresInSeconds *float64
				LastError        string
				BackedOffUntil   *time.Time
			}
		}
	}
	require.NoError(t, json.Unmarshal(raw, &routes), string(raw))
	require.Len(t, routes.Routes, 2)
	sup, broken := routes.Routes[0], routes.Routes[1]
	assert.Equal(t, k.tokens.URL+"/token", sup.TokenURL, "no query")
	assert.Equal(t, "body", sup.AuthStyle)
	assert.Equal(t, []string{k.supplier.Listener.Addr().String()}, sup.Hosts)
	assert.Equal(t, k.fp, sup.Token.Fingerprint)
	require.NotNil(t, sup.Token.ExpiresInSeconds)
	assert.InDelta(t, 600, *sup.Token.ExpiresInSeconds, 100)
	assert.Contains(t, broken.Token.LastError, "answered 503 temporarily_unavailable")
	assert.NotNil(t, broken.Token.BackedOffUntil)
	for _, secret := range []string{opsSecret, "tok-a-1", "hidden-query"} {
		assert.NotContains(t, string(raw), secret)
	}
}

func (k *knownTraffic) healthz(t *testing.T) {
	status, body := getBody(t, http.DefaultClient, "http://"+k.r.admin+"/healthz")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "ok\n", body)
}
