package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

func TestTokenFailureIsA502ThatSaysWhy(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			up := h.upstreamFor(sc.tls, false, nil)
			h.route(sc.hostport, up)
			failing := `{"error":"invalid_client"}`
			h.tokens.fail.Store(&failing)

			resp, body := h.get(h.caPool, sc.scheme+"://supplier.test/orders", nil)
			assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
			assert.Equal(t, "token", resp.Header.Get("X-Tokenproxy-Error"))
			assert.Equal(t, "orders", resp.Header.Get("X-Tokenproxy-Route"))
			// Each fact once: where, with which authStyle, what the endpoint said, what to check.
			assert.Equal(t, `tokenproxy: route "orders": the token step failed, so the request was not sent to supplier.test.`+"\n"+
				"token endpoint: "+h.tokens.URL+"/oauth/token (authStyle basic-header)\n"+
				"cause: answered 401 invalid_client (Client authentication failed)\n"+
				"hint: check clientId and clientSecret, or switch authStyle between basic-header and body (or set auto)\n", body)
			assert.NotContains(t, body, testClientSecret)
			assert.Empty(t, up.requests(), "nothing reaches the supplier without a token")

			// Right after a failure the endpoint is not asked again: the app gets the same answer at once.
			h.tokens.fail.Store(nil)
			resp, body = h.get(h.caPool, sc.scheme+"://supplier.test/orders", nil)
			assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
			assert.Equal(t, "token", resp.Header.Get("X-Tokenproxy-Error"))
			assert.Contains(t, body, "backing off")
			assert.EqualValues(t, 1, h.tokens.Count.Load())

			// The proxy stays up and recovers once the endpoint does and the backoff has passed.
			h.clock.Advance(tokensource.BackoffMin)
			resp, _ = h.get(h.caPool, sc.scheme+"://supplier.test/orders", nil)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
		})
	}
}

func TestTokenPathMissIsExplained(t *testing.T) {
	h := newHarness(t, harnessOptions{yaml: defaultRoutes + "    tokenPath: data.token\n"})
	up := newUpstream(t, nil, false, nil)
	h.route("fresh.test:80", up)
	resp, body := h.get(nil, "http://fresh.test/", nil)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Equal(t, "token", resp.Header.Get("X-Tokenproxy-Error"))
	assert.Contains(t, body, "hint: check tokenPath; keys present: access_token, expires_in, token_type")
	assert.NotContains(t, body, testTokenPrefix)
}

func TestUpstreamFailureIsA502ThatSaysWhy(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadAddr := dead.Addr().String()
	require.NoError(t, dead.Close()) // connection refused from now on

	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			h.mapHost(sc.hostport, deadAddr)
			resp, body := h.get(h.caPool, sc.scheme+"://supplier.test/orders", nil)
			assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
			assert.Equal(t, "upstream", resp.Header.Get("X-Tokenproxy-Error"))
			assert.Contains(t, body, `route "orders": the request to the upstream supplier.test`)
			assert.Contains(t, body, "connection refused")
			assert.NotContains(t, body, testTokenPrefix)
			waitUntil(t, "the upstream error counted", func() bool { return h.metrics.get("errors orders upstream") == 1 })
			assert.Equal(t, 1.0, h.metrics.get("requests orders 502"))
			assert.Zero(t, h.metrics.get("errors orders token"))
		})
	}

	t.Run("tunnel", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		h.mapHost("tunnel.test:443", deadAddr)
		resp, body, _, _ := h.connect("tunnel.test:443")
		assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
		assert.Equal(t, "upstream", resp.Header.Get("X-Tokenproxy-Error"))
		assert.Contains(t, body, "cannot reach tunnel.test:443")
		waitUntil(t, "the tunnel's upstream error counted", func() bool { return h.metrics.get("errors - upstream") == 1 })
	})
}

func TestUpstreamTimeoutIsA504(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{responseHeaderTimeout: 200 * time.Millisecond})
			stuck := make(chan struct{})
			up := h.upstreamFor(sc.tls, false, func(w http.ResponseWriter, r *http.Request) {
				select { // never answers in time
				case <-stuck:
				case <-r.Context().Done():
				}
			})
			h.route(sc.hostport, up)
			t.Cleanup(func() { close(stuck) })
			resp, body := h.get(h.caPool, sc.scheme+"://supplier.test/slow", nil)
			assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
			assert.Equal(t, "upstream", resp.Header.Get("X-Tokenproxy-Error"))
			assert.Contains(t, body, "timeout")
		})
	}
}

func TestShutdownLetsRequestsInFlightFinish(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			arrived, finish := make(chan struct{}), make(chan struct{})
			up := h.upstreamFor(sc.tls, false, func(w http.ResponseWriter, r *http.Request) {
				close(arrived)
				<-finish
				_, _ = io.WriteString(w, "finished")
			})
			h.route(sc.hostport, up)

			type result struct {
				status int
				body   string
				err    error
			}
			done := make(chan result, 1)
			go func() {
				resp, err := h.client(h.caPool).Get(sc.scheme + "://supplier.test/long")
				if err != nil {
					done <- result{err: err}
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				done <- result{resp.StatusCode, string(b), err}
			}()
			<-arrived
			var stopped atomic.Bool
			shutdown := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				shutdown <- h.srv.Shutdown(ctx)
				stopped.Store(true)
			}()
			// New connections are refused once shutdown has begun.
			require.Eventually(t, func() bool {
				c, err := net.Dial("tcp", h.proxyURL.Host)
				if err == nil {
					c.Close()
				}
				return err != nil
			}, 5*time.Second, 5*time.Millisecond)
			assert.False(t, stopped.Load(), "shutdown waits for the request in flight")
			close(finish)
			r := <-done
			require.NoError(t, r.err)
			assert.Equal(t, http.StatusOK, r.status)
			assert.Equal(t, "finished", r.body)
			assert.NoError(t, <-shutdown)
		})
	}
}

func TestInterceptedHostsShareCachedCertificates(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, h.upCert, false, nil)
	h.route("supplier.test:443", up)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A fresh client per request: a new CONNECT and TLS handshake each time.
			resp, err := h.client(h.caPool).Get("https://supplier.test/")
			if assert.NoError(t, err) {
				resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, h.srv.snap.Load().leaves.Len())
	assert.EqualValues(t, 1, h.tokens.Count.Load())
}

// With authStyle auto, the failure says which style the last request was sent with.
func TestAutoSaysWhichStyleFailed(t *testing.T) {
	h := newHarness(t, harnessOptions{yaml: defaultRoutes + "    authStyle: auto\n"})
	h.route("fresh.test:80", newUpstream(t, nil, false, nil))
	failing := "fail"
	h.tokens.fail.Store(&failing)
	resp, body := h.get(nil, "http://fresh.test/", nil)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Contains(t, body, "token endpoint: "+h.tokens.URL+"/oauth/token/fresh (authStyle auto, sent as body)")
	assert.Contains(t, body, "hint: check clientId and clientSecret (auto tried basic-header, then body)")
	assert.EqualValues(t, 2, h.tokens.Count.Load(), "basic-header, then body")
}

// A token endpoint answering 404 is a tokenUrl with the wrong path: the answer says so, and with which
// authStyle the request was sent.
func TestATokenEndpointAnswering404PointsAtTokenURL(t *testing.T) {
	notFound := testkit.NewTokenServer(t, func(_ int64, _ testkit.TokenRequest, w http.ResponseWriter) {
		http.NotFound(w, nil) // what a web server says for a path it does not serve
	})
	h := newHarness(t, harnessOptions{yaml: strings.Replace(defaultRoutes, "{{TOKEN_URL}}/fresh", notFound.URL+"/oauth/tokn", 1) +
		"    authStyle: body\n"})
	up := newUpstream(t, nil, false, nil)
	h.route("fresh.test:80", up)
	resp, body := h.get(nil, "http://fresh.test/", nil)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Equal(t, "token", resp.Header.Get("X-Tokenproxy-Error"))
	assert.Equal(t, "fresh", resp.Header.Get("X-Tokenproxy-Route"))
	assert.Equal(t, `tokenproxy: route "fresh": the token step failed, so the request was not sent to fresh.test.`+"\n"+
		"token endpoint: "+notFound.URL+"/oauth/tokn (authStyle body)\n"+
		"cause: answered 404\n"+
		"hint: check tokenUrl: the endpoint answered 404, so the path is probably not the token endpoint's\n", body)
	assert.Empty(t, up.requests())
	assert.EqualValues(t, 1, notFound.Count.Load())
	waitUntil(t, "the token error counted", func() bool { return h.metrics.get("errors fresh token") == 1 })
	assert.Equal(t, 1.0, h.metrics.get("fetches fresh status"))
}
