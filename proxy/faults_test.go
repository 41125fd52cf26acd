package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// withFault runs one fault against a proxy of its own, then checks what must hold after any fault: the
// proxy still serves an ordinary request with a token, no goroutine outlives the proxy (checked after it
// shut down), and no secret or token reached a log line (the harness checks that at cleanup).
func withFault(t *testing.T, yaml string, o harnessOptions, fault func(t *testing.T, h *harness)) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) }) // registered first: runs after the harness shut down
	o.yaml = yaml + healthyRoute
	h := newHarness(t, o)
	ok := newUpstream(t, nil, false, nil)
	h.route("healthy.test:80", ok)
	fault(t, h)
	resp, _ := h.get(nil, "http://healthy.test/after", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the proxy still serves")
	assert.True(t, strings.HasPrefix(ok.last(t).Header.Get("Authorization"), "Bearer "+testTokenPrefix), "with a token")
}

// healthyRoute ends every configuration of the fault tests: the route that must still work afterwards.
const healthyRoute = `
  - name: healthy
    hosts: [healthy.test]
    tokenUrl: {{TOKEN_URL}}
    clientId: buyer
    clientSecret: ` + testClientSecret + `
`

// faultRoutes has a route whose token endpoint is TOKEN_URL_UNDER_TEST.
const faultRoutes = `
{{MITM}}
routes:
  - name: faulty
    hosts: [faulty.test]
    tokenUrl: TOKEN_URL_UNDER_TEST
    clientId: buyer
    clientSecret: ` + testClientSecret + `
`

func TestFaultsOfTheTokenEndpoint(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadURL := "http://" + dead.Addr().String() + "/token"
	require.NoError(t, dead.Close())

	tests := []struct {
		name   string
		answer http.HandlerFunc // nil: the endpoint refuses connections
		want   []string         // in the 502's body
	}{
		{"refused", nil, []string{"request failed", "connection refused", "hint: check tokenUrl and that the token endpoint is reachable"}},
		{"hanging past the timeout", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // net/http notices the client leaving only once the body is read
			<-r.Context().Done()
		},
			[]string{"request failed", "hint: the token endpoint did not answer in time"}},
		{"500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) },
			[]string{"cause: answered 500", "hint: the token endpoint is failing"}},
		{"429 with Retry-After", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "120")
			http.Error(w, `{"error":"slow_down"}`, http.StatusTooManyRequests)
		}, []string{"cause: answered 429"}},
		{"invalid JSON", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{"access_token":`) },
			[]string{"a body that is not a JSON object"}},
		{"HTML", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "<html><body>Sign in</body></html>")
		}, []string{`not a JSON object: "<html><body>Sign in</body></html>"`, "hint: check tokenUrl: it does not look like a token endpoint"}},
		{"10 MiB body", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"access_token":"`+strings.Repeat("a", 10<<20)+`"}`)
		}, []string{"a body over 1048576 bytes"}},
		{"the token missing", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"token_type":"bearer","expires_in":60}`)
		}, []string{`tokenPath "access_token" found no token; keys present: expires_in, token_type`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := deadURL
			if tt.answer != nil {
				ts := httptest.NewServer(tt.answer)
				defer ts.Close()
				url = ts.URL + "/token"
			}
			// Short only where the timeout is the fault: a busy machine takes longer than that to send 1 MiB.
			timeout := 10 * time.Second
			if tt.name == "hanging past the timeout" {
				timeout = 300 * time.Millisecond
			}
			withFault(t, strings.Replace(faultRoutes, "TOKEN_URL_UNDER_TEST", url, 1), harnessOptions{tokenTimeout: timeout},
				func(t *testing.T, h *harness) {
					up := newUpstream(t, nil, false, nil)
					h.route("faulty.test:80", up)
					resp, body := h.get(nil, "http://faulty.test/", nil)
					assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
					assert.Equal(t, "token", resp.Header.Get("X-Tokenproxy-Error"))
					for _, w := range tt.want {
						assert.Contains(t, body, w)
					}
					// Asked again at once: the endpoint is not, the app gets the same failure.
					resp, body = h.get(nil, "http://faulty.test/", nil)
					assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
					assert.Contains(t, body, "backing off")
					assert.Empty(t, up.requests(), "no request went to the supplier without a token")
				})
		})
	}
}

// Odd lifetimes are clamped to 5 s–24 h; a token is still served.
func TestOddLifetimes(t *testing.T) {
	for _, tt := range []struct {
		expiresIn string
		want      float64 // seconds
	}{{"0", 5}, {"-1", 5}, {`"3600"`, 3600}, {"1e12", 86400}, {"", 300}} {
		t.Run("expires_in "+tt.expiresIn, func(t *testing.T) {
			answer := `{"access_token":"odd-token"}`
			if tt.expiresIn != "" {
				answer = `{"access_token":"odd-token","expires_in":` + tt.expiresIn + `}`
			}
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, answer) }))
			defer ts.Close()
			withFault(t, strings.Replace(faultRoutes, "TOKEN_URL_UNDER_TEST", ts.URL, 1), harnessOptions{}, func(t *testing.T, h *harness) {
				up := newUpstream(t, nil, false, nil)
				h.route("faulty.test:80", up)
				resp, _ := h.get(nil, "http://faulty.test/", nil)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Equal(t, "Bearer odd-token", up.last(t).Header.Get("Authorization"))
				st := h.srv.Status()[0]
				require.NotNil(t, st.Token.ExpiresInSeconds)
				assert.Equal(t, tt.want, *st.Token.ExpiresInSeconds)
			})
		})
	}
}

func TestFaultsOfTheUpstream(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		withFault(t, defaultRoutes, harnessOptions{}, func(t *testing.T, h *harness) {
			dead, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			h.mapHost("supplier.test:80", dead.Addr().String())
			require.NoError(t, dead.Close())
			resp, body := h.get(nil, "http://supplier.test/", nil)
			assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
			assert.Equal(t, "upstream", resp.Header.Get("X-Tokenproxy-Error"))
			assert.Contains(t, body, "connection refused")
		})
	})
	t.Run("reset in the middle of the body", func(t *testing.T) {
		withFault(t, defaultRoutes, harnessOptions{}, func(t *testing.T, h *harness) {
			h.route("supplier.test:80", newUpstream(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
				conn, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 1000))
				_ = brw.Flush()
				_ = conn.(*net.TCPConn).SetLinger(0) // a reset, not a clean close
				_ = conn.Close()
			}))
			resp, err := h.client(nil).Get("http://supplier.test/")
			require.NoError(t, err)
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Error(t, err, "the app sees the answer cut, not a complete short one")
		})
	})
	t.Run("hanging", func(t *testing.T) {
		withFault(t, defaultRoutes, harnessOptions{responseHeaderTimeout: 300 * time.Millisecond}, func(t *testing.T, h *harness) {
			h.route("supplier.test:80", newUpstream(t, nil, false, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
			resp, _ := h.get(nil, "http://supplier.test/", nil)
			assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
			assert.Equal(t, "upstream", resp.Header.Get("X-Tokenproxy-Error"))
		})
	})
	t.Run("slow headers within the timeout", func(t *testing.T) {
		withFault(t, defaultRoutes, harnessOptions{responseHeaderTimeout: 5 * time.Second}, func(t *testing.T, h *harness) {
			h.route("supplier.test:80", newUpstream(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(200 * time.Millisecond) // the upstream's own pace, not a wait of the test
				_, _ = io.WriteString(w, "late")
			}))
			resp, body := h.get(nil, "http://supplier.test/", nil)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "late", body)
		})
	})
	t.Run("a redirect to another host", func(t *testing.T) {
		withFault(t, defaultRoutes, harnessOptions{}, func(t *testing.T, h *harness) {
			other := newUpstream(t, nil, false, nil)
			h.route("other.test:80", other)
			h.route("supplier.test:80", newUpstream(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://other.test/collect", http.StatusFound)
			}))
			resp, _ := h.get(nil, "http://supplier.test/", nil)
			assert.Equal(t, http.StatusFound, resp.StatusCode, "the app gets the redirect: the proxy follows none")
			assert.Empty(t, other.requests())
			// An app that follows it sends a request of its own to a host of no route: no token on it.
			follower := h.client(nil)
			follower.CheckRedirect = nil
			resp, err := follower.Get("http://supplier.test/")
			require.NoError(t, err)
			resp.Body.Close()
			require.Len(t, other.requests(), 1)
			assert.Empty(t, other.last(t).Header.Get("Authorization"), "the token never went to the other host")
		})
	})
}

// Malformed and tricky requests: each gets a clear answer, and none carries a token where it should not.
func TestMalformedRequests(t *testing.T) {
	for _, tt := range []struct {
		name, request string
		status        int
		body          string
	}{
		{"a bad absolute URI", "GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest, ""},
		{"a request to the proxy itself", "GET /metrics HTTP/1.1\r\nHost: tokenproxy\r\n\r\n", http.StatusBadRequest, "tokenproxy is a forward proxy"},
		{"two Host headers", "GET http://supplier.test/ HTTP/1.1\r\nHost: supplier.test\r\nHost: evil.test\r\n\r\n", http.StatusBadRequest, ""},
		{"two Content-Lengths", "POST http://supplier.test/ HTTP/1.1\r\nHost: supplier.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcde", http.StatusBadRequest, ""},
		{"user info in the URL", "GET http://user:pass@supplier.test/ HTTP/1.1\r\nHost: supplier.test\r\n\r\n", http.StatusBadRequest, "user info"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			withFault(t, defaultRoutes, harnessOptions{}, func(t *testing.T, h *harness) {
				up := newUpstream(t, nil, false, nil)
				h.route("supplier.test:80", up)
				h.route("evil.test:80", up)
				resp, body := h.rawRequest(t, tt.request)
				assert.Equal(t, tt.status, resp.StatusCode)
				assert.Contains(t, body, tt.body)
				assert.Empty(t, up.requests(), "nothing went upstream")
			})
		})
	}

	t.Run("Content-Length beside chunked", func(t *testing.T) {
		// Go's server reads the body by Transfer-Encoding and drops the Content-Length before any handler
		// sees it (RFC 9112 §6.3 allows this); the upstream gets one framing of the proxy's own.
		withFault(t, defaultRoutes, harnessOptions{}, func(t *testing.T, h *harness) {
			up := newUpstream(t, nil, false, nil)
			h.route("supplier.test:80", up)
			resp, _ := h.rawRequest(t, "POST http://supplier.test/ HTTP/1.1\r\nHost: supplier.test\r\nContent-Length: 50\r\n"+
				"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			got := up.last(t)
			assert.Equal(t, int64(3), got.BodyLen)
			assert.Empty(t, got.Header.Get("Content-Length"), "the app's 50 never went upstream")
		})
	})
	t.Run("a Host header other than the URL's host", func(t *testing.T) {
		withFault(t, defaultRoutes, harnessOptions{}, func(t *testing.T, h *harness) {
			up, evil := newUpstream(t, nil, false, nil), newUpstream(t, nil, false, nil)
			h.route("supplier.test:80", up)
			h.route("evil.test:80", evil)
			resp, _ := h.rawRequest(t, "GET http://supplier.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n")
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "supplier.test", up.last(t).Host, "the URL decides, never the header")
			assert.Empty(t, evil.requests())
		})
	})
	t.Run("a route host with a trailing dot and in capitals", func(t *testing.T) {
		withFault(t, defaultRoutes, harnessOptions{}, func(t *testing.T, h *harness) {
			up := newUpstream(t, nil, false, nil)
			h.route("supplier.test:80", up) // the one canonical form is what is dialled
			resp, _ := h.rawRequest(t, "GET http://SUPPLIER.test./x HTTP/1.1\r\nHost: SUPPLIER.test.\r\n\r\n")
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "Bearer "+testTokenPrefix+"1", up.last(t).Header.Get("Authorization"), "the same host, the same route")
			assert.Equal(t, "supplier.test", up.last(t).Host, "and the same host in Host")
		})
	})
	t.Run("the IP address of a route host", func(t *testing.T) {
		withFault(t, defaultRoutes, harnessOptions{}, func(t *testing.T, h *harness) {
			up := newUpstream(t, nil, false, nil)
			h.route("supplier.test:80", up)
			resp, _ := h.rawRequest(t, fmt.Sprintf("GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n", up.Listener.Addr(), up.Listener.Addr()))
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Empty(t, up.last(t).Header.Get("Authorization"), "routes match names as written: an address is another host")
		})
	})
}
