package proxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/hostname"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/mitm"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

const (
	testClientSecret = "route-secret-Zq9"
	testTokenPrefix  = "issued-token-"
)

// received is what an upstream saw of one request.
type received = testkit.Received

// upstream is testkit's recorder under the names these tests use.
type upstream struct{ *testkit.Upstream }

func (u *upstream) requests() []received { return u.Requests() }

func (u *upstream) last(t *testing.T) received {
	t.Helper()
	return u.Last(t)
}

// newUpstream starts an upstream; handler may be nil (answers "hello from upstream"). With cert, it speaks TLS.
// Handlers that read the body themselves set readsBody; otherwise the body is hashed before handler runs.
func newUpstream(t *testing.T, cert *tls.Certificate, readsBody bool, handler http.HandlerFunc) *upstream {
	return &upstream{testkit.NewUpstream(t, testkit.UpstreamOptions{Handler: handler, ReadsBody: readsBody, Cert: cert,
		MaxHeaderBytes: 8 << 20, // larger than the proxy's: a 431 can only come from the proxy
	})}
}

// tokenServer issues testTokenPrefix+N for the N-th request to buyer's credentials (HTTP Basic), unless
// fail is set.
type tokenServer struct {
	*testkit.TokenServer
	fail     atomic.Pointer[string] // set: every request is answered 401 invalid_client
	failBody atomic.Pointer[string] // the JSON body of that 401, when not the standard one
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{}
	ts.TokenServer = testkit.NewTokenServer(t, func(n int64, req testkit.TokenRequest, w http.ResponseWriter) {
		user, pass, _ := req.BasicAuth()
		w.Header().Set("Content-Type", "application/json")
		if f := ts.fail.Load(); f != nil || user != "buyer" || pass != testClientSecret {
			w.WriteHeader(http.StatusUnauthorized)
			body := `{"error":"invalid_client","error_description":"Client authentication failed"}`
			if custom := ts.failBody.Load(); custom != nil {
				body = *custom
			}
			_, _ = io.WriteString(w, body)
			return
		}
		_, _ = fmt.Fprintf(w, `{"access_token":"%s%d","token_type":"Bearer","expires_in":3600}`, testTokenPrefix, n)
	})
	return ts
}

// harness is a running tokenproxy with a token server, upstreams behind test host names, and a CA.
type harness struct {
	t        *testing.T
	srv      *Server
	proxyURL *url.URL
	tokens   *tokenServer
	caFile   string
	caPool   *x509.CertPool // trusts tokenproxy's interception CA
	upPool   *x509.CertPool // trusts the upstreams' own certificate
	upCert   *tls.Certificate
	hostsMu  sync.Mutex
	hosts    map[string]string // test host:port → loopback address
	logs     *testkit.LogBuffer
	clock    *testkit.Clock // token lifetimes and backoff run on it
	metrics  *recorder
	dir      string // routes.yaml and ca/ live here
	clientMu sync.Mutex
	clients  []*http.Transport // every client's transport, so a test can close their idle connections
	// wedged holds every dial to a host mapped to wedgedAddr until it is closed, whatever the dial's context
	// says: a dialer that stopped completing.
	wedged chan struct{}
}

// wedgedAddr maps a test host to a dial that hangs until harness.wedged is closed.
const wedgedAddr = "wedged"

type harnessOptions struct {
	yaml                  string // routes.yaml; {{TOKEN_URL}} and {{MITM}} are filled in
	noMITM                bool
	responseHeaderTimeout time.Duration
	readHeaderTimeout     time.Duration
	clientIdleTimeout     time.Duration
	tokenTimeout          time.Duration
	requestBodyTimeout    time.Duration
	upstreamStallTimeout  time.Duration
	replayBudget          int64
	quiet                 bool // log warnings and errors only: load tests keep no line per request
	systemDialer          bool // dial as in production (IP literals and localhost only), not the test name map
}

const defaultRoutes = `
unmatched: forward
{{MITM}}
routes:
  - name: orders
    hosts: [supplier.test]
    tokenUrl: {{TOKEN_URL}}
    clientId: buyer
    clientSecret: ` + testClientSecret + `
  - name: secure
    hosts: [secure.test]
    tokenUrl: {{TOKEN_URL}}
    clientId: buyer
    clientSecret: ` + testClientSecret + `
    upstreamTLS: true
  - name: fresh
    hosts: [fresh.test]
    tokenUrl: {{TOKEN_URL}}/fresh
    clientId: buyer
    clientSecret: ` + testClientSecret + `
    cache: false
`

func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, tokens: newTokenServer(t), hosts: map[string]string{}, logs: &testkit.LogBuffer{}, wedged: make(chan struct{}),
		clock: testkit.NewClock(time.Unix(1_800_000_000, 0)), metrics: newRecorder(), dir: dir}
	up := testkit.SelfSigned(t, "supplier.test", "secure.test", "tunnel.test", "fresh.test")
	h.upCert, h.upPool = up.TLS, up.Pool()
	certFile, _, err := mitm.WriteCA(filepath.Join(dir, "ca"))
	require.NoError(t, err)
	h.caFile = certFile
	caPEM, err := os.ReadFile(certFile)
	require.NoError(t, err)
	h.caPool = x509.NewCertPool()
	require.True(t, h.caPool.AppendCertsFromPEM(caPEM))

	if o.yaml == "" {
		o.yaml = defaultRoutes
	}
	cfg := h.config(o.yaml, !o.noMITM)

	level := slog.LevelDebug
	if o.quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: level}))
	dial := h.dial
	if o.systemDialer {
		dial = nil
	}
	h.srv, err = New(cfg, Options{Logger: log, Metrics: h.metrics, DialContext: dial, RootCAs: h.upPool, Clock: h.clock,
		ResponseHeaderTimeout: o.responseHeaderTimeout, ReadHeaderTimeout: o.readHeaderTimeout, TokenTimeout: o.tokenTimeout,
		ClientIdleTimeout: o.clientIdleTimeout, ReplayBudget: o.replayBudget, RequestBodyTimeout: o.requestBodyTimeout, UpstreamStallTimeout: o.upstreamStallTimeout})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- h.srv.Serve(ln) }()
	require.Eventually(t, h.srv.Ready, 10*time.Second, time.Millisecond, "the proxy serves")
	h.proxyURL = &url.URL{Scheme: "http", Host: ln.Addr().String()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, h.srv.Shutdown(ctx))
		assert.NoError(t, <-served)
		h.closeIdle()
		assert.Zero(t, h.srv.inflight.Load(), "every request was counted out exactly once")
		assert.Zero(t, h.srv.replayHeld.Load(), "every exchange gave its part of the replay budget back")
		// No secret and no token ever reaches a log line.
		logs := h.logs.String()
		// Asserted without printing the log: a failure must not show the secret it found.
		assert.False(t, strings.Contains(logs, testClientSecret), "a log line holds the client secret")
		assert.False(t, strings.Contains(logs, testTokenPrefix), "a log line holds a token")
	})
	return h
}

// config parses routes.yaml text; {{TOKEN_URL}} and {{MITM}} are filled in.
func (h *harness) config(text string, withMITM bool) *config.Config {
	h.t.Helper()
	section := "mitm: {caCert: ca/ca.crt, caKey: ca/ca.key}"
	if !withMITM {
		section = ""
	}
	text = strings.NewReplacer("{{TOKEN_URL}}", h.tokens.URL+"/oauth/token", "{{MITM}}", section).Replace(text)
	cfg, err := config.Parse(filepath.Join(h.dir, "routes.yaml"), []byte(text), config.LoadOptions{ParseCA: mitm.ParseCA})
	require.NoError(h.t, err)
	return cfg
}

// swap puts new routes.yaml text in service, as a reload does.
func (h *harness) swap(text string) {
	h.t.Helper()
	require.NoError(h.t, h.srv.Swap(h.config(text, true)))
}

// route maps a test host:port to an upstream.
func (h *harness) route(hostport string, u *upstream) {
	h.mapHost(hostport, u.Listener.Addr().String())
}

func (h *harness) mapHost(hostport, addr string) {
	h.hostsMu.Lock()
	defer h.hostsMu.Unlock()
	h.hosts[hostport] = addr
}

// dial is the proxy's dialer: test host names go to loopback, anything else fails without touching the network.
// The proxy must only ever dial a host in its canonical form (what it matched).
func (h *harness) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if c, err := hostname.Parse(addr, ""); err != nil || c.String() != addr {
		h.t.Errorf("the proxy dialled %q, which is not a canonical host:port", addr)
		return nil, fmt.Errorf("dial %s: not canonical", addr)
	}
	h.hostsMu.Lock()
	target, ok := h.hosts[addr]
	h.hostsMu.Unlock()
	if !ok {
		if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
			return nil, fmt.Errorf("dial %s: no such test host", addr)
		}
		target = addr
	}
	if target == wedgedAddr {
		<-h.wedged
		return nil, fmt.Errorf("dial %s: wedged", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, target)
}

// client goes through the proxy explicitly (ProxyFromEnvironment skips loopback) and trusts pool.
func (h *harness) client(pool *x509.CertPool) *http.Client {
	tr := &http.Transport{
		Proxy:           http.ProxyURL(h.proxyURL),
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}
	h.clientMu.Lock()
	h.clients = append(h.clients, tr)
	h.clientMu.Unlock()
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// closeIdle closes the idle keep-alive connections of every client the harness made.
func (h *harness) closeIdle() {
	h.clientMu.Lock()
	defer h.clientMu.Unlock()
	for _, tr := range h.clients {
		tr.CloseIdleConnections()
	}
}

func (h *harness) get(pool *x509.CertPool, rawURL string, header http.Header) (*http.Response, string) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	require.NoError(h.t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := h.client(pool).Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return resp, string(body)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// writeCertPEM writes a certificate to a PEM file for clients such as curl.
func writeCertPEM(t *testing.T, cert *tls.Certificate) string {
	path := filepath.Join(t.TempDir(), "cert.pem")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644))
	return path
}

// connect sends CONNECT target to the proxy and returns its answer (body read) and the connection.
func (h *harness) connect(target string) (*http.Response, string, net.Conn, *bufio.Reader) {
	h.t.Helper()
	c, err := net.Dial("tcp", h.proxyURL.Host)
	require.NoError(h.t, err)
	h.t.Cleanup(func() { _ = c.Close() })
	require.NoError(h.t, c.SetDeadline(time.Now().Add(10*time.Second))) // the test's own bound
	_, err = io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
	require.NoError(h.t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	require.NoError(h.t, err)
	var body []byte
	if resp.StatusCode != http.StatusOK {
		body, _ = io.ReadAll(resp.Body)
	}
	return resp, string(body), c, br
}

// rawConnect opens a CONNECT tunnel through the proxy and returns the connection after the 200.
func (h *harness) rawConnect(target string) (net.Conn, *bufio.Reader) {
	h.t.Helper()
	resp, body, c, br := h.connect(target)
	require.Equal(h.t, http.StatusOK, resp.StatusCode, body)
	return c, br
}

// connectTLS opens a CONNECT tunnel to target through the proxy and starts TLS trusting tokenproxy's CA.
func (h *harness) connectTLS(target string) (*tls.Conn, *bufio.Reader) {
	h.t.Helper()
	c, _ := h.rawConnect(target)
	host, _, _ := net.SplitHostPort(target)
	tc := tls.Client(c, &tls.Config{ServerName: host, RootCAs: h.caPool})
	require.NoError(h.t, tc.Handshake())
	return tc, bufio.NewReader(tc)
}

// recorder is a Metrics that counts what the proxy reports, for tests to assert on values.
type recorder struct {
	mu     sync.Mutex
	counts map[string]float64
}

func newRecorder() *recorder { return &recorder{counts: map[string]float64{}} }

func (r *recorder) add(key string, d float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[key] += d
}

// get returns a count by its key, e.g. "requests orders 200" or "connections intercepted".
func (r *recorder) get(key string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[key]
}

func (r *recorder) Request(route string, status int, _ time.Duration) {
	r.add(fmt.Sprintf("requests %s %d", route, status), 1)
}
func (r *recorder) Error(route, kind string)        { r.add("errors "+route+" "+kind, 1) }
func (r *recorder) Replay(route string)             { r.add("replays "+route, 1) }
func (r *recorder) Denied(reason string)            { r.add("denied "+reason, 1) }
func (r *recorder) ConnectionOpened(k ConnKind)     { r.add("connections "+string(k), 1) }
func (r *recorder) ConnectionRefused(reason string) { r.add("refused "+reason, 1) }
func (r *recorder) ConnectionClosed(k ConnKind)     { r.add("connections "+string(k), -1) }
func (r *recorder) RoutesInService([]string)        {}
func (r *recorder) TokenLookup(route string, via tokensource.Via) {
	r.add("lookups "+route+" "+string(via), 1)
}
func (r *recorder) RefusalBackoff(route string) { r.add("refusal backoffs "+route, 1) }
func (r *recorder) TokenFetched(route, result string, _ time.Duration) {
	r.add("fetches "+route+" "+result, 1)
}
