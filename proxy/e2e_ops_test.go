package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/mitm"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// waitUntil is testkit.WaitFor under the name these tests use.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, what, cond)
}

func TestMetricsAfterKnownTraffic(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.route("supplier.test:80", newUpstream(t, nil, false, nil))
	h.route("supplier.test:443", newUpstream(t, h.upCert, false, nil))
	h.route("other.test:80", newUpstream(t, nil, false, nil))
	h.route("fresh.test:80", newUpstream(t, nil, false, nil))
	m := h.metrics

	for range 3 {
		resp, _ := h.get(nil, "http://supplier.test/orders", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	resp, _ := h.get(h.caPool, "https://supplier.test/orders", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = h.get(nil, "http://other.test/", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	failing := `{"error":"invalid_client"}`
	h.tokens.fail.Store(&failing)
	resp, _ = h.get(nil, "http://fresh.test/", nil)
	require.Equal(t, http.StatusBadGateway, resp.StatusCode)

	assert.Equal(t, 4.0, m.get("requests orders 200"), "plain and intercepted requests of the route")
	assert.Equal(t, 1.0, m.get("requests - 200"), "the unmatched host")
	assert.Equal(t, 1.0, m.get("requests fresh 502"))
	assert.Equal(t, 1.0, m.get("errors fresh token"))
	assert.Equal(t, 1.0, m.get("fetches orders ok"))
	assert.Equal(t, 1.0, m.get("fetches fresh status"))
	assert.Equal(t, 1.0, m.get("lookups orders fetch"))
	assert.Equal(t, 3.0, m.get("lookups orders hit"))
	assert.Zero(t, m.get("replays orders"))
	// Every client connection has been counted in and, once the clients have gone, out again.
	assert.Positive(t, m.get("connections plain"))
	h.closeIdle()
	waitUntil(t, "connections counted out", func() bool {
		return m.get("connections plain") == 0 && m.get("connections intercepted") == 0
	})
}

func TestConnectionsAreCountedByKind(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.route("supplier.test:443", newUpstream(t, h.upCert, false, nil))
	h.route("tunnel.test:443", newUpstream(t, h.upCert, false, nil))
	m := h.metrics

	intercepted, _ := h.connectTLS("supplier.test:443")
	waitUntil(t, "an intercepted connection", func() bool { return m.get("connections intercepted") == 1 })
	tunnel, _ := h.rawConnect("tunnel.test:443")
	waitUntil(t, "a tunnel", func() bool { return m.get("connections tunnel") == 1 })
	// The app was answered 200 for its tunnel: one request; the intercepted CONNECT is not one.
	waitUntil(t, "the tunnel counted as a request", func() bool { return m.get("requests - 200") == 1 })
	assert.Zero(t, m.get("requests orders 200"))
	assert.Zero(t, m.get("connections plain"), "a CONNECT connection no longer counts as plain")

	require.NoError(t, intercepted.Close())
	require.NoError(t, tunnel.Close())
	waitUntil(t, "both closed", func() bool {
		return m.get("connections intercepted") == 0 && m.get("connections tunnel") == 0
	})
}

func TestRequestLine(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, nil, false, nil)
	h.route("supplier.test:80", up)
	req, err := http.NewRequest(http.MethodPost, "http://supplier.test/orders/7?secret-query=1", strings.NewReader("hello"))
	require.NoError(t, err)
	resp, err := h.client(nil).Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp, _ = h.get(nil, "http://supplier.test/again", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	fp := tokensource.Fingerprint(testTokenPrefix + "1")
	logs := h.logs.String()
	assert.Regexp(t, `level=INFO msg=request route=orders method=POST host=supplier.test path=/orders/7 status=200 `+
		`duration_ms=[0-9.]+ bytes_sent=5 bytes_received=19 token=fetch token_fp=`+fp+"\n", logs)
	assert.Regexp(t, `msg=request route=orders method=GET host=supplier.test path=/again status=200 duration_ms=[0-9.]+ `+
		`bytes_sent=0 bytes_received=19 token=hit token_fp=`+fp+"\n", logs)
	assert.NotContains(t, logs, "secret-query", "the query never reaches the log")

	h.route("other.test:80", up)
	h.get(nil, "http://other.test/x", nil)
	assert.Regexp(t, `msg=request route=- method=GET host=other.test path=/x status=200 duration_ms=[0-9.]+ bytes_sent=0 bytes_received=19\n`,
		h.logs.String(), "no token, no token fields")
}

// A request that never reached its upstream sent no token, so its line names none; one whose headers were
// written did, whatever happened after.
func TestTheRequestLineNamesATokenOnlyWhenItLeft(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	deadAddr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		require.NoError(t, ln.Close()) // connection refused from now on
		return ln.Addr().String()
	}
	lineOf := func(path string) string {
		t.Helper()
		waitUntil(t, "the line of "+path, func() bool { return strings.Contains(h.logs.String(), " path="+path+" ") })
		return regexp.MustCompile(`.* path=` + regexp.QuoteMeta(path) + ` .*`).FindString(h.logs.String())
	}
	failsUpstream := func(u string) {
		t.Helper()
		resp, body := h.get(nil, u, nil)
		require.Equal(t, http.StatusBadGateway, resp.StatusCode, body)
		require.Equal(t, "upstream", resp.Header.Get("X-Tokenproxy-Error"))
	}

	// Not sent: a refused dial, a TLS handshake with something that is not TLS, one the supplier hangs up.
	h.mapHost("supplier.test:80", deadAddr())
	failsUpstream("http://supplier.test/refused")
	h.route("secure.test:443", newUpstream(t, nil, false, nil)) // plain http where upstreamTLS expects TLS
	failsUpstream("http://secure.test/not-tls")
	hangup, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { hangup.Close() })
	go func() {
		for {
			c, err := hangup.Accept()
			if err != nil {
				return
			}
			_, _ = c.Read(make([]byte, 1)) // the ClientHello's first byte, then gone
			c.Close()
		}
	}()
	h.mapHost("secure.test:443", hangup.Addr().String())
	failsUpstream("http://secure.test/hangup")
	assert.Equal(t, int64(1), h.tokens.Count.Load(), "the routes share credentials: one token, got before the upstream failed")
	for _, path := range []string{"/refused", "/not-tls", "/hangup"} {
		line := lineOf(path)
		assert.Regexp(t, `status=502 duration_ms=[0-9.]+ bytes_sent=0 bytes_received=[0-9]+ failed=upstream error=`, line)
		assert.NotContains(t, line, "token", path)
	}

	// Sent: an upstream that took the request and hung up, and one whose answer broke the connection and
	// whose host could not be dialled for the transport's own retry.
	up := newUpstream(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/dropped" {
			h.mapHost("supplier.test:80", deadAddr()) // the transport's retry on a new connection is refused
		}
		if r.URL.Path != "/warm" {
			panic(http.ErrAbortHandler) // hangs up without an answer
		}
	})
	h.route("supplier.test:80", up)
	failsUpstream("http://supplier.test/hung-up")
	resp, _ := h.get(nil, "http://supplier.test/warm", nil) // a kept-alive connection the next request reuses
	require.Equal(t, http.StatusOK, resp.StatusCode)
	failsUpstream("http://supplier.test/dropped")
	for _, path := range []string{"/hung-up", "/dropped"} {
		assert.Regexp(t, `status=502 .* token=hit token_fp=[0-9a-f]+ failed=upstream`, lineOf(path), path)
	}

	// Sent, refused with 401, and the replay with a fresh token could not dial: the first token left.
	h.route("supplier.test:80", newUpstream(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
		h.mapHost("supplier.test:80", deadAddr())
		w.Header().Set("Connection", "close") // the replay needs a new connection
		w.WriteHeader(http.StatusUnauthorized)
	}))
	failsUpstream("http://supplier.test/replayed")
	assert.Regexp(t, `status=502 .* token=fetch token_fp=[0-9a-f]+ replayed=true failed=upstream`, lineOf("/replayed"))
}

// On a kept-alive connection each line says whether its own request's token left: after a request that
// sent its token, one whose token was fetched for it (the token endpoint's request runs in the request's
// context) and whose upstream then refused the dial names none. Over plain HTTP, and intercepted HTTP/1
// and HTTP/2, whose traces are set up differently.
func TestEachRequestOnAConnectionNamesOnlyItsOwnToken(t *testing.T) {
	for _, kind := range []struct {
		name, scheme, port string
		proto              int
	}{{"plain", "http", "80", 1}, {"intercepted", "https", "443", 1}, {"intercepted HTTP/2", "https", "443", 2}} {
		t.Run(kind.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			var cert *tls.Certificate
			if kind.scheme == "https" {
				cert = h.upCert
			}
			h.route("fresh.test:"+kind.port, newUpstream(t, cert, false, nil)) // cache: false, a token fetched per request
			c := h.client(h.caPool)
			c.Transport.(*http.Transport).ForceAttemptHTTP2 = kind.proto == 2
			t.Cleanup(c.CloseIdleConnections) // before the harness shuts down, which an idle HTTP/2 client slows
			get := func(path string, status int) (reused bool) {
				t.Helper()
				ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
					GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }})
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, kind.scheme+"://fresh.test"+path, nil)
				require.NoError(t, err)
				resp, err := c.Do(req)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				require.Equal(t, status, resp.StatusCode)
				require.Equal(t, kind.proto, resp.ProtoMajor)
				return reused
			}
			lineOf := func(path string) string {
				t.Helper()
				waitUntil(t, "the line of "+path, func() bool { return strings.Contains(h.logs.String(), " path="+path+" ") })
				return regexp.MustCompile(`.* path=` + regexp.QuoteMeta(path) + ` .*`).FindString(h.logs.String())
			}

			get("/sent", http.StatusOK)
			dead, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			require.NoError(t, dead.Close()) // connection refused from now on
			h.mapHost("fresh.test:"+kind.port, dead.Addr().String())
			h.srv.up.closeIdle()
			assert.True(t, get("/not-sent", http.StatusBadGateway), "the second request went on the first one's connection")

			assert.Equal(t, int64(2), h.tokens.Count.Load(), "a token fetched for each request")
			assert.Regexp(t, `status=200 .* token=fetch token_fp=[0-9a-f]+\n?$`, lineOf("/sent"))
			line := lineOf("/not-sent")
			assert.Regexp(t, `status=502 .* failed=upstream`, line)
			assert.NotContains(t, line, "token", "the line of a request whose token never left")
		})
	}
}

// An app that does not trust the CA is the most common mistake: the warning names the host and the file.
func TestAnAppThatDoesNotTrustTheCAIsWarnedAbout(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, h.upCert, false, nil)
	h.route("supplier.test:443", up)
	_, err := h.client(x509.NewCertPool()).Get("https://supplier.test/")
	require.Error(t, err)
	waitUntil(t, "the warning", func() bool {
		return strings.Contains(h.logs.String(), "level=WARN msg=\"the app refused tokenproxy's certificate: it does not trust the interception CA\" host=supplier.test:443 ca_cert="+h.caFile)
	})
	assert.Empty(t, up.requests())

	// curl, which most shell scripts use, refuses the same way.
	out, err := exec.Command("curl", "-sS", "--max-time", "20", "-x", "http://"+h.proxyURL.Host, "https://supplier.test/").CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "SSL certificate problem")
	waitUntil(t, "a second warning", func() bool {
		return strings.Count(h.logs.String(), "does not trust the interception CA") == 2
	})
}

func TestTunnelCloseIsLogged(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.route("tunnel.test:443", newUpstream(t, h.upCert, false, nil))
	resp, body := h.get(h.upPool, "https://tunnel.test/t", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "hello from upstream", body)
	h.closeIdle()
	waitUntil(t, "the close line", func() bool {
		return strings.Contains(h.logs.String(), "msg=\"tunnel closed\" route=- host=tunnel.test:443")
	})
	line := ""
	for _, l := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(l, "tunnel closed") {
			line = l
		}
	}
	assert.Regexp(t, `duration_ms=[0-9.]+ bytes_sent=[1-9][0-9]* bytes_received=[1-9][0-9]*$`, line)
}

// A request finishes on the configuration it started with, even when a reload removes its route meanwhile:
// here its 401 replay still uses that route's token settings.
func TestRequestsFinishOnTheSnapshotTheyStartedWith(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	var calls atomic.Int64
	up := newUpstream(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			arrived <- struct{}{}
			<-release
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "replayed")
	})
	h.route("supplier.test:80", up)
	type result struct {
		status int
		body   string
	}
	done := make(chan result, 1)
	go func() {
		resp, err := h.client(nil).Get("http://supplier.test/")
		if err != nil {
			done <- result{}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b)}
	}()
	<-arrived
	h.swap(`
routes:
  - name: other
    hosts: [other.test]
    tokenUrl: {{TOKEN_URL}}
    clientId: buyer
    clientSecret: ` + testClientSecret + `
`)
	close(release)
	r := <-done
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "replayed", r.body)
	got := up.requests()
	require.Len(t, got, 2)
	assert.Equal(t, "Bearer "+testTokenPrefix+"2", got[1].Header.Get("Authorization"))

	// Requests that start after the reload run on the new configuration: the host has no route now.
	resp, _ := h.get(nil, "http://supplier.test/", http.Header{"Authorization": {"Bearer app-own"}})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "Bearer app-own", up.last(t).Header.Get("Authorization"))
}

func TestReloadKeepsTokensOfUnchangedCredentials(t *testing.T) {
	const oneRoute = `
{{MITM}}
routes:
  - name: orders
    hosts: [supplier.test]
    tokenUrl: {{TOKEN_URL}}
    clientId: buyer
    clientSecret: ` + testClientSecret + `
`
	h := newHarness(t, harnessOptions{yaml: oneRoute})
	h.route("supplier.test:80", newUpstream(t, nil, false, nil))
	get := func() {
		t.Helper()
		resp, _ := h.get(nil, "http://supplier.test/", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	get()
	require.EqualValues(t, 1, h.tokens.Count.Load())

	h.swap(oneRoute + `
  - name: added
    hosts: [added.test]
    tokenUrl: {{TOKEN_URL}}
    clientId: someone-else
    clientSecret: x
`)
	get()
	assert.EqualValues(t, 1, h.tokens.Count.Load(), "the route's credentials did not change: its token is kept")

	h.swap(oneRoute + "    scope: orders.write\n")
	get()
	assert.EqualValues(t, 2, h.tokens.Count.Load(), "other credentials, another token")

	h.swap(oneRoute)
	get()
	assert.EqualValues(t, 3, h.tokens.Count.Load(), "the first token was dropped when no route used its credentials")
	var names []string
	for _, r := range h.srv.Status() {
		names = append(names, r.Name)
	}
	assert.Equal(t, []string{"orders"}, names)
}

func TestReloadWithANewCAStartsWithNoLeaves(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.route("supplier.test:443", newUpstream(t, h.upCert, false, nil))
	resp, _ := h.get(h.caPool, "https://supplier.test/", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	leaves := h.srv.snap.Load().leaves
	require.Equal(t, 1, leaves.Len())

	h.swap(defaultRoutes) // the same CA: the leaves are kept
	assert.Same(t, leaves, h.srv.snap.Load().leaves)

	_, _, err := mitm.WriteCA(filepath.Join(h.dir, "ca2"))
	require.NoError(t, err)
	require.NoError(t, os.Rename(filepath.Join(h.dir, "ca"), filepath.Join(h.dir, "ca-old")))
	require.NoError(t, os.Rename(filepath.Join(h.dir, "ca2"), filepath.Join(h.dir, "ca")))
	h.swap(defaultRoutes)
	assert.Zero(t, h.srv.snap.Load().leaves.Len())

	_, err = h.client(h.caPool).Get("https://supplier.test/")
	require.Error(t, err, "the old CA no longer signs")
	pem, err := os.ReadFile(filepath.Join(h.dir, "ca", "ca.crt"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	resp, _ = h.get(pool, "https://supplier.test/", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestReadyUntilTheDrainBegins(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	arrived := make(chan struct{})
	release := make(chan struct{})
	h.route("supplier.test:80", newUpstream(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
	}))
	assert.True(t, h.srv.Ready())
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := h.client(nil).Get("http://supplier.test/")
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-arrived
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdown <- h.srv.Shutdown(ctx)
	}()
	waitUntil(t, "not ready while draining", func() bool { return !h.srv.Ready() })
	close(release)
	<-done
	require.NoError(t, <-shutdown)
}

// Configurations swapped while plain and intercepted clients keep sending: no request fails, and each
// carries a token.
func TestSwapUnderLoadLosesNoRequest(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.route("supplier.test:80", newUpstream(t, nil, false, nil))
	h.route("supplier.test:443", newUpstream(t, h.upCert, false, nil))
	var ok, failed atomic.Int64
	var lastFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, target := range []struct {
		url  string
		pool *x509.CertPool
	}{{"http://supplier.test/loop", nil}, {"http://supplier.test/loop", nil}, {"https://supplier.test/loop", h.caPool}, {"https://supplier.test/loop", h.caPool}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := h.client(target.pool) // keep-alive: requests ride connections opened before the swaps
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(target.url)
				if err != nil {
					failed.Add(1)
					lastFailure.Store(err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					lastFailure.Store(resp.Status)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	variants := []string{
		defaultRoutes,
		defaultRoutes + "  - {name: extra, hosts: [extra.test], tokenUrl: \"{{TOKEN_URL}}\", clientId: buyer, clientSecret: " + testClientSecret + "}\n",
		strings.Replace(defaultRoutes, "    hosts: [supplier.test]\n", "    hosts: [supplier.test]\n    scope: orders.write\n", 1),
	}
	for i := range 20 {
		seen := ok.Load()
		h.swap(variants[i%len(variants)])
		waitUntil(t, "requests after the swap", func() bool { return ok.Load() >= seen+20 })
	}
	close(stop)
	wg.Wait()
	assert.Zero(t, failed.Load(), "last failure: %v", lastFailure.Load())
	t.Logf("%d requests through 20 swaps, %d failed", ok.Load(), failed.Load())
}

// Requests that arrive while another request's token fetch is under way wait for it: one fetch, one line
// saying token=fetch, the others token=wait, and the cache metric counts each way.
func TestRequestsWaitingOnAnotherRequestsFetch(t *testing.T) {
	gate := make(chan struct{})
	var opened sync.Once
	open := func() { opened.Do(func() { close(gate) }) }
	tokens := testkit.NewTokenServer(t, func(n int64, _ testkit.TokenRequest, w http.ResponseWriter) {
		if n == 1 {
			<-gate
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"access_token":"%s%d","token_type":"Bearer","expires_in":3600}`, testTokenPrefix, n)
	})
	h := newHarness(t, harnessOptions{yaml: `
routes:
  - name: orders
    hosts: [supplier.test]
    tokenUrl: ` + tokens.URL + `/oauth/token
    clientId: buyer
    clientSecret: ` + testClientSecret + `
`})
	t.Cleanup(open) // before the harness shuts down and the token server closes: a failing test leaves nothing hanging
	up := newUpstream(t, nil, false, nil)
	h.route("supplier.test:80", up)

	const waiting = 3
	results := make(chan error, 1+waiting)
	send := func(path string) {
		resp, err := h.client(nil).Get("http://supplier.test/" + path)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("%s: %s", path, resp.Status)
			}
		}
		results <- err
	}
	go send("first")
	waitUntil(t, "the first request's fetch at the token endpoint", func() bool { return tokens.Count.Load() == 1 })
	for i := range waiting {
		go send(fmt.Sprint("waiting-", i))
	}
	waitUntil(t, "every request waiting on the one fetch", func() bool { return h.srv.cache.Waiting() == 1+waiting })
	open()
	for range 1 + waiting {
		require.NoError(t, <-results)
	}
	resp, _ := h.get(nil, "http://supplier.test/later", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	assert.EqualValues(t, 1, tokens.Count.Load(), "one fetch for all of them")
	for _, r := range up.requests() {
		assert.Equal(t, "Bearer "+testTokenPrefix+"1", r.Header.Get("Authorization"))
	}
	m := h.metrics
	waitUntil(t, "every request counted", func() bool { return m.get("requests orders 200") == 2+waiting })
	assert.Equal(t, 1.0, m.get("lookups orders fetch"))
	assert.Equal(t, float64(waiting), m.get("lookups orders wait"))
	assert.Equal(t, 1.0, m.get("lookups orders hit"))
	assert.Equal(t, 1.0, m.get("fetches orders ok"))

	fp := tokensource.Fingerprint(testTokenPrefix + "1")
	waitUntil(t, "every request line", func() bool { return strings.Count(h.logs.String(), "msg=request ") == 2+waiting })
	logs := h.logs.String()
	assert.Equal(t, 1, strings.Count(logs, " token=fetch token_fp="+fp+"\n"), logs)
	assert.Regexp(t, `msg=request route=orders method=GET host=supplier.test path=/first status=200 .* token=fetch token_fp=`+fp+"\n", logs)
	assert.Equal(t, waiting, strings.Count(logs, " token=wait token_fp="+fp+"\n"), logs)
	assert.Regexp(t, `path=/later status=200 .* token=hit token_fp=`+fp+"\n", logs)
}
