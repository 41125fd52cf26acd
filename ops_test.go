package main

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
	"sync"
	"sync/atomic"
	"syscall"
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

const opsSecret = "ops-secret-4411"

// opsTokens is a token endpoint that wants a client secret in the body and names its tokens by the secret
// it was given (never containing it): tok-a for the first accepted secret, tok-b for the second.
type opsTokens struct {
	*httptest.Server
	count   atomic.Int64
	mu      sync.Mutex
	secrets map[string]string // accepted secret → token name
	seen    []string          // secrets received, in order
}

func newOpsTokens(t *testing.T, accepted map[string]string) *opsTokens {
	o := &opsTokens{secrets: accepted}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := o.count.Add(1)
		_ = r.ParseForm()
		secret := r.PostForm.Get("client_secret")
		o.mu.Lock()
		o.seen = append(o.seen, secret)
		name, ok := o.secrets[secret]
		o.mu.Unlock()
		if r.URL.Path == "/down" { // down for an hour: the backoff lasts as long as Retry-After says
			w.Header().Set("Retry-After", "3600")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"temporarily_unavailable"}`)
			return
		}
		if !ok || r.URL.Path == "/refuse" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		_, _ = fmt.Fprintf(w, `{"access_token":"%s-%d","expires_in":600}`, name, n)
	}))
	t.Cleanup(o.Close)
	return o
}

// authEcho is a supplier that answers with the Authorization header it received.
func authEcho(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "auth="+r.Header.Get("Authorization"))
	}))
	t.Cleanup(s.Close)
	return s
}

func proxyClient(addr string) *http.Client {
	u, _ := url.Parse("http://" + addr)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}, Timeout: 20 * time.Second}
}

func getBody(t *testing.T, c *http.Client, rawURL string) (int, string) {
	t.Helper()
	resp, err := c.Get(rawURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

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
	require.Eventually(t, func() bool { return r.countLog(`"msg":"request"`) == 6 }, 20*time.Second, 5*time.Millisecond,
		"a request line for each request")

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
	require.Eventually(t, func() bool {
		m, _ := scrape(t, r.admin)
		return value(m, "tokenproxy_connections", "kind", "plain") == 1
	}, 20*time.Second, 5*time.Millisecond, "the client's keep-alive connection, and no other, is open")
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
	require.Eventually(t, func() bool {
		m, _ := scrape(t, r.admin)
		return value(m, "tokenproxy_connections", "kind", "plain") == 0
	}, 20*time.Second, 5*time.Millisecond, "the connection counted out once the client closed it")

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

// freeAddr returns a loopback address nothing listens on, for a configuration that names its port.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestReadinessDuringTheDrainAndHealthExitCodes(t *testing.T) {
	tokens := newOpsTokens(t, map[string]string{opsSecret: "tok-a"})
	arrived, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	supplier := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		_, _ = io.WriteString(w, "finished")
	}))
	defer supplier.Close()
	defer free() // a failing test must not leave the supplier hanging
	dir := t.TempDir()
	admin := freeAddr(t)
	config := writeFile(t, dir, "routes.yaml", fmt.Sprintf(`
listen: 127.0.0.1:0
admin: %s
routes:
  - {name: s, hosts: ["%s"], tokenUrl: "%s", clientId: ops, clientSecret: %s, authStyle: body}
`, admin, supplier.Listener.Addr(), tokens.URL, opsSecret))
	r := start(t, config)

	code, out, _ := runBinary(t, "", nil, "health", "-config", config)
	assert.Equal(t, 0, code)
	assert.Equal(t, "ready\n", out)

	result := make(chan string, 1)
	go func() {
		resp, err := proxyClient(r.addr).Get(supplier.URL + "/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-arrived
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	}, 10*time.Second, 5*time.Millisecond, "/readyz says 503 while draining")
	code, _, errOut := runBinary(t, "", nil, "health", "-config", config)
	assert.Equal(t, 1, code, "not ready while draining")
	assert.Contains(t, errOut, "answered 503")

	free()
	assert.Equal(t, "finished", <-result, "the request in flight finished")
	select {
	case err := <-r.done:
		assert.NoError(t, err)
	case <-time.After(35 * time.Second):
		t.Fatal("no exit after the drain")
	}
	code, _, errOut = runBinary(t, "", nil, "health", "-config", config)
	assert.Equal(t, 1, code, "nothing listens any more")
	assert.Contains(t, errOut, "connection refused")

	code, _, errOut = runBinary(t, "", nil, "health", "-config", writeFile(t, dir, "noadmin.yaml", "routes: []\n"))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "names no admin address")
}

// reloadable is a running binary with a routes.yaml the test rewrites.
type reloadable struct {
	*running
	config string
	tokens *opsTokens
}

func routeYAML(name, host, tokenURL, extra string) string {
	return fmt.Sprintf("  - {name: %s, hosts: [\"%s\"], tokenUrl: \"%s\", clientId: ops, clientSecret: %s, authStyle: body%s}\n",
		name, host, tokenURL, opsSecret, extra)
}

func startReloadable(t *testing.T, routes string, args ...string) *reloadable {
	tokens := newOpsTokens(t, map[string]string{opsSecret: "tok-a"})
	dir := t.TempDir()
	config := writeFile(t, dir, "routes.yaml", "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nroutes:\n"+strings.ReplaceAll(routes, "TOKENS", tokens.URL))
	r := startArgs(t, append([]string{"-config", config}, args...))
	return &reloadable{running: r, config: config, tokens: tokens}
}

// write replaces routes.yaml in one step, as a deployment tool or a ConfigMap update would.
func (r *reloadable) write(t *testing.T, content string) {
	content = strings.ReplaceAll(content, "TOKENS", r.tokens.URL)
	tmp := r.config + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, r.config))
}

func TestReloadUnderLoadLosesNoRequest(t *testing.T) {
	one, two := authEcho(t), authEcho(t)
	routesOne := routeYAML("one", one.Listener.Addr().String(), "TOKENS", "")
	r := startReloadable(t, routesOne, "-reload-interval", "50ms")
	c := proxyClient(r.addr)

	var ok, failed, otherToken atomic.Int64
	var failures sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(one.URL + "/loop")
				if err != nil {
					failed.Add(1)
					failures.Store(err.Error(), true)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "auth=Bearer tok-a-") {
					failed.Add(1)
					failures.Store(fmt.Sprintf("%d %s", resp.StatusCode, b), true)
					continue
				}
				if string(b) != "auth=Bearer tok-a-1" {
					otherToken.Add(1)
				}
				ok.Add(1)
			}
		}()
	}
	require.Eventually(t, func() bool { return ok.Load() > 50 }, 20*time.Second, time.Millisecond)

	// Five reloads while the loop runs: the second route comes and goes, the first stays.
	head := "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nroutes:\n"
	for i := range 5 {
		withTwo := head + routesOne + routeYAML("two", two.Listener.Addr().String(), "TOKENS", "")
		written := time.Now()
		r.write(t, withTwo)
		require.Eventually(t, func() bool {
			_, body := getBody(t, c, two.URL+"/")
			return strings.HasPrefix(body, "auth=Bearer ")
		}, 10*time.Second, 5*time.Millisecond, "the new route in effect")
		t.Logf("reload %d: the new route was in effect %s after the write", i+1, time.Since(written).Round(time.Millisecond))
		r.write(t, head+routesOne+routeYAML("two", two.Listener.Addr().String(), "TOKENS", ", scope: s"+fmt.Sprint(i))+
			"  - {name: three, hosts: [three.test], tokenUrl: \"TOKENS\", clientId: x, clientSecret: y}\n")
		require.Eventually(t, func() bool {
			return r.countLog(`"msg":"configuration reloaded"`, `"routes":3`) == i+1
		}, 10*time.Second, 5*time.Millisecond, "the three-route configuration reloaded")
		r.write(t, head+routesOne)
		require.Eventually(t, func() bool {
			_, body := getBody(t, c, two.URL+"/")
			return body == "auth="
		}, 10*time.Second, 5*time.Millisecond, "the route removed again")
	}
	close(stop)
	wg.Wait()
	var seen []string
	failures.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
	assert.Zero(t, failed.Load(), "failed requests during reloads: %v", seen)
	t.Logf("%d requests through 15 reloads, %d failed", ok.Load(), failed.Load())
	assert.Zero(t, otherToken.Load(), "route one's credentials never changed, so its first token served every request")
	require.NoError(t, r.stop(t))
}

func TestReloadPicksUpASecretRotatedByASymlinkSwap(t *testing.T) {
	supplier := authEcho(t)
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	// The layout the kubelet gives a Secret volume: files are symlinks into ..data, itself a symlink.
	require.NoError(t, os.MkdirAll(filepath.Join(secrets, "..2026_11_22_01"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(secrets, "..2026_11_22_01", "client-secret"), []byte("first-secret\n"), 0o600))
	require.NoError(t, os.Symlink("..2026_11_22_01", filepath.Join(secrets, "..data")))
	require.NoError(t, os.Symlink("..data/client-secret", filepath.Join(secrets, "client-secret")))

	tokens := newOpsTokens(t, map[string]string{"first-secret": "tok-a", "second-secret": "tok-b"})
	config := writeFile(t, dir, "routes.yaml", fmt.Sprintf(`
listen: 127.0.0.1:0
routes:
  - {name: s, hosts: ["%s"], tokenUrl: "%s", clientId: ops, clientSecretFile: secrets/client-secret, authStyle: body}
`, supplier.Listener.Addr(), tokens.URL))
	r := startArgs(t, []string{"-config", config, "-reload-interval", "100ms"})
	c := proxyClient(r.addr)
	_, body := getBody(t, c, supplier.URL+"/")
	require.Equal(t, "auth=Bearer tok-a-1", body)

	// Rotate as the kubelet does: a new timestamped directory, then ..data swapped to it in one rename.
	require.NoError(t, os.MkdirAll(filepath.Join(secrets, "..2026_11_22_02"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(secrets, "..2026_11_22_02", "client-secret"), []byte("second-secret\n"), 0o600))
	require.NoError(t, os.Symlink("..2026_11_22_02", filepath.Join(secrets, "..data_tmp")))
	require.NoError(t, os.Rename(filepath.Join(secrets, "..data_tmp"), filepath.Join(secrets, "..data")))
	require.NoError(t, os.RemoveAll(filepath.Join(secrets, "..2026_11_22_01")))

	r.waitLog(t, "the reload", `"msg":"configuration reloaded"`, `"reason":"files changed"`)
	_, body = getBody(t, c, supplier.URL+"/")
	assert.Equal(t, "auth=Bearer tok-b-2", body, "the new secret got a new token on the next request")
	tokens.mu.Lock()
	assert.Equal(t, []string{"first-secret", "second-secret"}, tokens.seen)
	tokens.mu.Unlock()
	assert.NotContains(t, r.logs(), "second-secret")
	require.NoError(t, r.stop(t))
}

func TestAnInvalidReloadKeepsTheConfigurationInService(t *testing.T) {
	one, two := authEcho(t), authEcho(t)
	routesOne := routeYAML("one", one.Listener.Addr().String(), "TOKENS", "")
	r := startReloadable(t, routesOne, "-reload-interval", "50ms")
	c := proxyClient(r.addr)
	_, body := getBody(t, c, one.URL+"/")
	require.Equal(t, "auth=Bearer tok-a-1", body)

	r.write(t, "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nroutes:\n"+routesOne+"  - name: two\n    tokenPth: x\n")
	r.waitLog(t, "the first problem", `"msg":"configuration reload refused; the previous configuration keeps serving"`,
		`"problem":"`+r.config+`:6: routes[1].tokenPth: unknown key; did you mean tokenPath?"`)
	r.waitLog(t, "the second problem", `"problem":"`+r.config+`:5: routes[1].hosts: required key is missing"`)
	_, body = getBody(t, c, one.URL+"/")
	assert.Equal(t, "auth=Bearer tok-a-1", body, "the old configuration still serves")
	m, _ := scrape(t, r.admin)
	assert.Equal(t, 1.0, value(m, "tokenproxy_config_reloads_total", "result", "failure"))

	// Fixed: the next poll loads it.
	r.write(t, "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nroutes:\n"+routesOne+routeYAML("two", two.Listener.Addr().String(), "TOKENS", ""))
	r.waitLog(t, "the fixed file loaded", `"msg":"configuration reloaded"`)
	_, body = getBody(t, c, two.URL+"/")
	assert.True(t, strings.HasPrefix(body, "auth=Bearer tok-a-"), body)
	m, _ = scrape(t, r.admin)
	assert.Equal(t, 1.0, value(m, "tokenproxy_config_reloads_total", "result", "success"))
	require.NoError(t, r.stop(t))
}

func TestSIGHUPReloadsAndDoesNotExit(t *testing.T) {
	one, two := authEcho(t), authEcho(t)
	routesOne := routeYAML("one", one.Listener.Addr().String(), "TOKENS", "")
	r := startReloadable(t, routesOne, "-reload-interval", "0")
	c := proxyClient(r.addr)
	r.write(t, "listen: 127.0.0.2:1\nadmin: 127.0.0.1:0\nroutes:\n"+routesOne+routeYAML("two", two.Listener.Addr().String(), "TOKENS", ""))

	require.NoError(t, r.cmd.Process.Signal(syscall.SIGHUP))
	r.waitLog(t, "the reload", `"msg":"configuration reloaded"`, `"reason":"SIGHUP"`)
	r.waitLog(t, "the listen warning", `"msg":"listen cannot change without a restart; still listening on the old address"`)
	_, body := getBody(t, c, two.URL+"/")
	assert.True(t, strings.HasPrefix(body, "auth=Bearer tok-a-"), body)
	select {
	case err := <-r.done:
		t.Fatalf("SIGHUP ended the process: %v", err)
	default:
	}
	require.NoError(t, r.stop(t))
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", `
routes:
  - name: a
    hosts: [a.example]
    issuer: https://127.0.0.1:1/never-asked
    clientId: c
    clientSecret: ${VALIDATE_SECRET}
`)
	code, out, errOut := runBinary(t, "", []string{"VALIDATE_SECRET=x"}, "validate", "-config", good)
	assert.Equal(t, 0, code, errOut)
	assert.Equal(t, good+": valid, 1 route\n", out, "no discovery, no network")

	code, _, errOut = runBinary(t, "", nil, "validate", "-config", good)
	assert.Equal(t, 2, code)
	assert.Equal(t, good+":7: routes[0].clientSecret: environment variable VALIDATE_SECRET is not set\n", errOut)

	code, out, _ = runBinary(t, "", nil, "validate", "-config", good, "-syntax-only")
	assert.Equal(t, 0, code)
	assert.Equal(t, good+": valid syntax, 1 route\n", out)

	code, _, errOut = runBinary(t, "", []string{"VALIDATE_SECRET="}, "validate", "-config", good)
	assert.Equal(t, 2, code)
	assert.Equal(t, good+":7: routes[0].clientSecret: VALIDATE_SECRET is set but empty\n", errOut)

	broken := writeFile(t, dir, "broken.yaml", "listen: 127.0.0.1:3128\nunmatched: forward\nroutes:\n  - hosts: [a.example, b\n    name: x\n")
	code, _, errOut = runBinary(t, "", nil, "validate", "-config", broken)
	assert.Equal(t, 2, code)
	assert.Equal(t, broken+":4: did not find expected ',' or ']'\n", errOut)

	typo := writeFile(t, dir, "typo.yaml", "routes:\n  - name: a\n    hosts: [a.example]\n    tokenUrl: https://auth.example/t\n    clientId: c\n    clientSecret: s\n    authstyle: body\n    scop: x\n")
	code, _, errOut = runBinary(t, "", nil, "validate", "-config", typo, "-syntax-only")
	assert.Equal(t, 2, code)
	assert.Equal(t, typo+":7: routes[0].authstyle: unknown key; did you mean authStyle?\n"+
		typo+":8: routes[0].scop: unknown key; did you mean scope?\n", errOut)

	// A mistyped required key is one line: the unknown key says what it should be.
	requiredTypo := writeFile(t, dir, "requiredtypo.yaml", "routes:\n  - name: a\n    hosts: [a.example]\n    tokenUri: https://auth.example/t\n    clientld: c\n    clientSecret: s\n")
	code, _, errOut = runBinary(t, "", nil, "validate", "-config", requiredTypo)
	assert.Equal(t, 2, code)
	assert.Equal(t, requiredTypo+":4: routes[0].tokenUri: unknown key; did you mean tokenUrl?\n"+
		requiredTypo+":5: routes[0].clientld: unknown key; did you mean clientId?\n", errOut)

	// An API key from a variable set but empty is named, not sent empty.
	apiKey := writeFile(t, dir, "apikey.yaml", "routes:\n  - name: a\n    hosts: [a.example]\n    tokenUrl: https://auth.example/t\n"+
		"    clientId: c\n    clientSecret: s\n    headers: {X-Api-Key: \"${SUPPLIER_API_KEY}\"}\n    tokenHeaders: {X-Gateway-Key: \"${GATEWAY_KEY}\"}\n")
	code, out, errOut = runBinary(t, "", []string{"SUPPLIER_API_KEY=", "GATEWAY_KEY="}, "validate", "-config", apiKey)
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	assert.Equal(t, apiKey+":7: routes[0].headers.X-Api-Key: SUPPLIER_API_KEY is set but empty\n"+
		apiKey+":8: routes[0].tokenHeaders.X-Gateway-Key: GATEWAY_KEY is set but empty\n", errOut)
	code, out, errOut = runBinary(t, "", []string{"SUPPLIER_API_KEY=k", "GATEWAY_KEY=g"}, "validate", "-config", apiKey)
	assert.Equal(t, 0, code, errOut)
	assert.Equal(t, apiKey+": valid, 1 route\n", out)

	// params never replace a field tokenproxy sends, not even under -syntax-only.
	override := writeFile(t, dir, "override.yaml", "routes:\n  - name: a\n    hosts: [a.example]\n    tokenUrl: https://auth.example/t\n"+
		"    clientId: c\n    clientSecret: s\n    params: {client_secret: other, grant_type: password}\n")
	for _, args := range [][]string{{"validate", "-config", override}, {"validate", "-config", override, "-syntax-only"}} {
		code, out, errOut = runBinary(t, "", nil, args...)
		assert.Equal(t, 2, code)
		assert.Empty(t, out)
		assert.Equal(t, override+":7: routes[0].params.client_secret: params may not set client_secret: tokenproxy sends it from clientSecret or clientSecretFile\n"+
			override+":7: routes[0].params.grant_type: params may not set grant_type: tokenproxy sends it from grantType\n", errOut)
	}

	// Files it cannot read, and an empty CA name, are errors as at start-up; -syntax-only reads no file.
	files := writeFile(t, dir, "files.yaml", "mitm:\n  caCert: ${CA_DIR}/ca.crt\n  caKey: ${CA_KEY}\n"+
		"routes:\n  - name: a\n    hosts: [a.example]\n    tokenUrl: https://auth.example/t\n    clientId: c\n    clientSecretFile: missing-secret\n")
	code, _, errOut = runBinary(t, "", []string{"CA_DIR=" + dir, "CA_KEY="}, "validate", "-config", files)
	assert.Equal(t, 2, code)
	assert.Equal(t, files+":2: mitm.caCert: cannot read "+filepath.Join(dir, "ca.crt")+": no such file or directory\n"+
		files+":3: mitm.caKey: CA_KEY is set but empty\n"+
		files+":9: routes[0].clientSecretFile: cannot read "+filepath.Join(dir, "missing-secret")+": no such file or directory\n", errOut)
	code, _, errOut = runBinary(t, "", nil, "validate", "-config", files, "-syntax-only")
	assert.Equal(t, 0, code, errOut)

	// The secret key's problems name where the key came from.
	code, _, errOut = runBinary(t, "", []string{"VALIDATE_SECRET=x"}, "validate", "-config", good, "-secret-key-file", filepath.Join(dir, "no-key"))
	assert.Equal(t, 2, code)
	assert.Equal(t, "tokenproxy: -secret-key-file "+filepath.Join(dir, "no-key")+": cannot read: no such file or directory\n", errOut)
	code, _, errOut = runBinary(t, "", []string{"VALIDATE_SECRET=x", "TOKENPROXY_SECRET_KEY=not base64"}, "validate", "-config", good)
	assert.Equal(t, 2, code)
	assert.Equal(t, "tokenproxy: $TOKENPROXY_SECRET_KEY: the secret key is not base64\n", errOut)
}

func TestCommandLine(t *testing.T) {
	code, _, errOut := runBinary(t, "", nil, "verison")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `tokenproxy: unknown command "verison"; commands: ca, check, encrypt, health, serve, validate, version`)

	code, _, errOut = runBinary(t, "", nil, "validate", "-config", "x.yaml", "stray")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `tokenproxy validate: unexpected argument "stray"`)
	code, _, errOut = runBinary(t, "", nil, "-config", "x.yaml", "stray")
	assert.Equal(t, 2, code, "the proxy does not start with a stray word")
	assert.Contains(t, errOut, `unexpected argument "stray" (flags come as -name value; commands: ca, check, encrypt, health, serve, validate, version)`)

	code, out, _ := runBinary(t, "", nil, "version")
	assert.Equal(t, 0, code)
	assert.Regexp(t, `^tokenproxy \S+ \(revision \S+.*, go1\.\d+`, out)

	// -h: each command's flags, each default said once, and exit 0.
	for _, cmd := range []string{"", "serve", "validate", "check", "health", "encrypt", "ca", "version"} {
		args := []string{"-h"}
		if cmd != "" {
			args = []string{cmd, "-h"}
		}
		code, _, errOut := runBinary(t, "", nil, args...)
		assert.Equal(t, 0, code, cmd)
		assert.Equal(t, 1, strings.Count(errOut, "usage:"), "%s -h: %s", cmd, errOut)
		lines := strings.Split(errOut, "\n")
		for _, line := range lines {
			assert.LessOrEqual(t, strings.Count(strings.ToLower(line), "default"), 1, "%s -h: %q", cmd, line)
			if strings.HasPrefix(line, "  -") || strings.Contains(line, "(default") { // a flag, or its default
				same := 0
				for _, l := range lines {
					if l == line {
						same++
					}
				}
				assert.Equal(t, 1, same, "%s -h says %q more than once", cmd, line)
			}
		}
	}
	_, _, errOut = runBinary(t, "", nil, "-h")
	assert.Contains(t, errOut, "tokenproxy validate", "the proxy's -h lists the commands")
	assert.Contains(t, errOut, "[-drain-delay D]", "the serve line names every serve flag")

	// help: the usage, one command's flags, or an error naming the word.
	code, out, _ = runBinary(t, "", nil, "help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "tokenproxy health [-config F]")
	code, out, _ = runBinary(t, "", nil, "help", "validate")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "usage: tokenproxy validate")
	assert.Contains(t, out, "-syntax-only")
	code, _, errOut = runBinary(t, "", nil, "help", "verison")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `tokenproxy help: "verison" is not a command; commands: ca, check`)
	code, _, errOut = runBinary(t, "", nil, "help", "validate", "extra")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `tokenproxy help: one command at a time (got "validate extra")`)
}

// A release build carries its version from the Dockerfile's -ldflags.
func TestVersionFromTheBuild(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tokenproxy")
	out, err := runGo("build", "-ldflags", "-X github.com/tokenproxy/tokenproxy/internal/buildinfo.version=v9.8.7 "+
		"-X github.com/tokenproxy/tokenproxy/internal/buildinfo.revision=0123456789abcdef0123", "-o", bin, ".")
	require.NoError(t, err, out)
	code, stdout, _ := runCommand(t, bin, "version")
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(stdout, "tokenproxy v9.8.7 (revision 0123456789ab, "), stdout)
}

func TestANonLoopbackListenNeedsClients(t *testing.T) {
	config := writeFile(t, t.TempDir(), "routes.yaml", "listen: 0.0.0.0:0\nroutes: []\n")
	code, _, errOut := runBinary(t, "", nil, "-config", config)
	assert.Equal(t, 2, code)
	assert.Equal(t, config+`:1: listen: "0.0.0.0:0" is not a loopback address, so other machines could spend the routes' tokens: `+
		"add clients (who may use the proxy, by address or proxyAuth), or listen on 127.0.0.1\n", errOut)
}

// With -drain-delay, SIGTERM turns readiness off at once but the proxy keeps accepting and serving new
// connections until the delay is over.
func TestDrainDelayKeepsServingWhileNotReady(t *testing.T) {
	supplier := authEcho(t)
	tokens := newOpsTokens(t, map[string]string{opsSecret: "tok-a"})
	config := writeFile(t, t.TempDir(), "routes.yaml", "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nroutes:\n"+
		routeYAML("s", supplier.Listener.Addr().String(), tokens.URL, ""))
	r := startArgs(t, []string{"-config", config, "-drain-delay", "60s"})
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + r.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	}, 10*time.Second, 5*time.Millisecond)
	// A new connection, after readiness went: still accepted and served.
	status, body := getBody(t, proxyClient(r.addr), supplier.URL+"/late")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "auth=Bearer tok-a-1", body)
	r.waitLog(t, "the delay", `"msg":"stopping: not ready any more, still serving until load balancers have noticed"`, `"drain_delay":"1m0s"`)
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM), "a second signal ends the delay")
	select {
	case err := <-r.done:
		assert.NoError(t, err)
	case <-time.After(35 * time.Second):
		t.Fatal("no exit after the second signal")
	}
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
	waitFor := func(what string, g func() float64, want float64) {
		t.Helper()
		require.Eventually(t, func() bool { return g() == want }, 20*time.Second, 5*time.Millisecond, "%s: want %v", what, want)
	}
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
	waitFor("the two intercepted connections the app keeps", intercepted, 2)
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
	waitFor("the open tunnel", tunnels, 1)
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
	waitFor("the tunnel closed", tunnels, 0)

	app.CloseIdleConnections()
	waitFor("the intercepted connections closed", intercepted, 0)
	assert.Equal(t, 2.0, certificates(), "the leaves stay cached for the next connections")
	status, _ := getBody(t, app, two.URL+"/")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, 2.0, certificates(), "a host seen before gets no new leaf")
	require.NoError(t, r.stop(t))
}
