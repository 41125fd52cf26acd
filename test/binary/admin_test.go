package binary

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/mitm"
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

func TestAdminEndpointsAfterKnownTraffic(t *testing.T) {
	tokens := newOpsTokens(t, map[string]string{opsSecret: "tok-a"})
	supplier, other := authEcho(t), authEcho(t)
	dir := t.TempDir()
	config := writeFile(t, dir, "routes.yaml", fmt.Sprintf(`
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
	started := time.Now()
	r := start(t, config, "OPS_SECRET="+opsSecret)
	require.NotEmpty(t, r.admin)
	c := proxyClient(r.addr)
	for range 3 {
		status, body := getBody(t, c, supplier.URL+"/x?order=query-value-93")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "auth=Bearer tok-a-1", body)
	}
	status, _ := getBody(t, c, "http://broken.test/")
	require.Equal(t, http.StatusBadGateway, status)
	dead := freeAddr(t) // an unmatched host that refuses connections: an upstream failure
	status, _ = getBody(t, c, "http://"+dead+"/gone")
	require.Equal(t, http.StatusBadGateway, status)
	status, _ = getBody(t, c, other.URL+"/")
	require.Equal(t, http.StatusOK, status)
	testkit.WaitFor(t, "a request line for each request", func() bool { return r.countLog(`"msg":"request"`) == 6 })

	m, raw := scrape(t, r.admin)
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
	testkit.WaitFor(t, "the client's keep-alive connection, and no other, is open", func() bool {
		m, _ := scrape(t, r.admin)
		return value(m, "tokenproxy_connections", "kind", "plain") == 1
	})
	assert.Equal(t, 0.0, value(m, "tokenproxy_certificates_cached"))
	assert.Equal(t, 0.0, value(m, "tokenproxy_config_reloads_total", "result", "success"))
	assert.Equal(t, 0.0, value(m, "tokenproxy_config_reloads_total", "result", "failure"))
	assert.GreaterOrEqual(t, value(m, "tokenproxy_config_last_reload_success_timestamp_seconds"), float64(started.Unix()))
	assert.Equal(t, 1.0, value(m, "tokenproxy_build_info"))
	assert.Positive(t, value(m, "go_goroutines"), "the Go collector")
	assert.Positive(t, value(m, "process_resident_memory_bytes"), "the process collector")
	fp := tokensource.Fingerprint("tok-a-1")
	for _, secret := range []string{opsSecret, "tok-a-1", fp, "hidden-query", "query-value-93"} {
		assert.NotContains(t, raw, secret)
	}
	c.CloseIdleConnections()
	testkit.WaitFor(t, "the connection counted out once the client closed it", func() bool {
		m, _ := scrape(t, r.admin)
		return value(m, "tokenproxy_connections", "kind", "plain") == 0
	})

	// The request lines in JSON: duration_ms and the byte counts are numbers, the path has no query, and
	// token and token_fp appear only when a token was sent.
	var lines []map[string]any
	for _, l := range strings.Split(r.logs(), "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(l), &line) == nil && line["msg"] == "request" {
			lines = append(lines, line)
		}
	}
	require.Len(t, lines, 6)
	assert.NotContains(t, r.logs(), "query-value-93", "the query never reaches the log")
	for i, want := range []struct {
		route, path            string
		status                 float64
		received               float64
		token, tokenFP, failed string
	}{
		{"supplier", "/x", 200, float64(len("auth=Bearer tok-a-1")), "fetch", fp, ""},
		{"supplier", "/x", 200, float64(len("auth=Bearer tok-a-1")), "hit", fp, ""},
		{"supplier", "/x", 200, float64(len("auth=Bearer tok-a-1")), "hit", fp, ""},
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

	resp, err := http.Get("http://" + r.admin + "/routes")
	require.NoError(t, err)
	rawRoutes, _ := io.ReadAll(resp.Body)
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
	require.NoError(t, json.Unmarshal(rawRoutes, &routes), string(rawRoutes))
	require.Len(t, routes.Routes, 2)
	sup, broken := routes.Routes[0], routes.Routes[1]
	assert.Equal(t, tokens.URL+"/token", sup.TokenURL, "no query")
	assert.Equal(t, "body", sup.AuthStyle)
	assert.Equal(t, []string{supplier.Listener.Addr().String()}, sup.Hosts)
	assert.Equal(t, fp, sup.Token.Fingerprint)
	require.NotNil(t, sup.Token.ExpiresInSeconds)
	assert.InDelta(t, 600, *sup.Token.ExpiresInSeconds, 100)
	assert.Contains(t, broken.Token.LastError, "answered 503 temporarily_unavailable")
	assert.NotNil(t, broken.Token.BackedOffUntil)
	for _, secret := range []string{opsSecret, "tok-a-1", "hidden-query"} {
		assert.NotContains(t, string(rawRoutes), secret)
	}

	status, body := getBody(t, http.DefaultClient, "http://"+r.admin+"/healthz")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "ok\n", body)
	require.NoError(t, r.stop(t))
}

// The gauges of the binary's /metrics follow real traffic: a leaf certificate per intercepted host, the
// intercepted connections the app keeps open, and a tunnel while it is open and not after.
func TestConnectionAndCertificateGaugesFollowTheTraffic(t *testing.T) {
	tokens := newOpsTokens(t, map[string]string{opsSecret: "tok-a"})
	upstream := testkit.SelfSigned(t, "127.0.0.2") // and 127.0.0.1
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "tls auth="+r.Header.Get("Authorization"))
	})
	one := httptest.NewUnstartedServer(echo)
	two := httptest.NewUnstartedServer(echo)
	ln, err := net.Listen("tcp", "127.0.0.2:0") // another intercepted host, not only another port
	require.NoError(t, err)
	two.Listener.Close()
	two.Listener = ln
	for _, s := range []*httptest.Server{one, two} {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{*upstream.TLS}}
		s.StartTLS()
		t.Cleanup(s.Close)
	}
	plain := authEcho(t) // no route: reached through a tunnel

	dir := t.TempDir()
	caFile, _, err := mitm.WriteCA(filepath.Join(dir, "ca"))
	require.NoError(t, err)
	caPEM, err := os.ReadFile(caFile)
	require.NoError(t, err)
	caPool := x509.NewCertPool()
	require.True(t, caPool.AppendCertsFromPEM(caPEM))
	config := writeFile(t, dir, "routes.yaml", "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nmitm: {caCert: ca/ca.crt, caKey: ca/ca.key}\nroutes:\n"+
		routeYAML("one", one.Listener.Addr().String(), tokens.URL, "")+routeYAML("two", two.Listener.Addr().String(), tokens.URL, ""))
	r := start(t, config, "SSL_CERT_FILE="+writeFile(t, dir, "upstream.pem", string(upstream.PEM)), "SSL_CERT_DIR="+t.TempDir())
	gauge := func(name string, labels ...string) func() float64 {
		return func() float64 {
			m, _ := scrape(t, r.admin)
			return value(m, name, labels...)
		}
	}
	certificates := gauge("tokenproxy_certificates_cached")
	intercepted := gauge("tokenproxy_connections", "kind", "intercepted")
	tunnels := gauge("tokenproxy_connections", "kind", "tunnel")
	is := func(g func() float64, want float64) func() bool { return func() bool { return g() == want } }
	assert.Equal(t, 0.0, certificates())
	assert.Equal(t, 0.0, intercepted())
	assert.Equal(t, 0.0, tunnels())

	proxyURL, _ := url.Parse("http://" + r.addr)
	app := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: caPool}}}
	for _, u := range []string{one.URL, two.URL, one.URL} {
		status, body := getBody(t, app, u+"/")
		require.Equal(t, http.StatusOK, status, body)
		require.Equal(t, "tls auth=Bearer tok-a-1", body)
	}
	testkit.WaitFor(t, "the two intercepted connections the app keeps", is(intercepted, 2))
	assert.Equal(t, 2.0, certificates(), "one leaf for each intercepted host")
	assert.Equal(t, 0.0, tunnels())

	// A tunnel to a host without a route: 1 while it is open, 0 once it closed.
	c, err := net.Dial("tcp", r.addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	target := plain.Listener.Addr().String()
	_, err = io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	testkit.WaitFor(t, "the open tunnel", is(tunnels, 1))
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+target+"\r\nAuthorization: Bearer app-own\r\n\r\n")
	require.NoError(t, err)
	resp, err = http.ReadResponse(br, nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "auth=Bearer app-own", string(body), "the tunnel relays the app's bytes untouched")
	assert.Equal(t, 1.0, tunnels())
	assert.Equal(t, 2.0, intercepted())
	require.NoError(t, c.Close())
	testkit.WaitFor(t, "the tunnel closed", is(tunnels, 0))

	app.CloseIdleConnections()
	testkit.WaitFor(t, "the intercepted connections closed", is(intercepted, 0))
	assert.Equal(t, 2.0, certificates(), "the leaves stay cached for the next connections")
	status, _ := getBody(t, app, two.URL+"/")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, 2.0, certificates(), "a host seen before gets no new leaf")
	require.NoError(t, r.stop(t))
}
