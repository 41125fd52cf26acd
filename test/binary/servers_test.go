package binary

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
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
func authEcho(t *testing.T) *testkit.Upstream {
	return testkit.NewUpstream(t, testkit.UpstreamOptions{Handler: func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "auth="+r.Header.Get("Authorization"))
	}})
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

// freeAddr returns a loopback address nothing listens on, for a configuration that names its port.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func routeYAML(name, host, tokenURL, extra string) string {
	return fmt.Sprintf("  - {name: %s, hosts: [\"%s\"], tokenUrl: \"%s\", clientId: ops, clientSecret: %s, authStyle: body%s}\n",
		name, host, tokenURL, opsSecret, extra)
}

// checkServers are a token endpoint that wants binSecret in the body and a supplier that wants its token.
func checkServers(t *testing.T) (tokens, supplier *httptest.Server, tokenRequests *atomic.Int64) {
	tokenRequests = &atomic.Int64{}
	tokens = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenRequests.Add(1)
		_ = r.ParseForm()
		if r.PostForm.Get("client_secret") != binSecret {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"unknown client"}`)
			return
		}
		_, _ = io.WriteString(w, `{"access_token":"check-token-value","expires_in":3600,"scope":"orders.read"}`)
	}))
	t.Cleanup(tokens.Close)
	supplier = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer check-token-value" || r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(supplier.Close)
	return tokens, supplier, tokenRequests
}

func checkConfig(t *testing.T, tokenURL, secret, supplierHost string) string {
	return writeFile(t, t.TempDir(), "routes.yaml", fmt.Sprintf(`
routes:
  - name: orders
    hosts: ["%s"]
    tokenUrl: %s
    clientId: buyer
    clientSecret: "%s"
    authStyle: body
  - name: other
    hosts: [other.example]
    tokenUrl: %s
    clientId: buyer
    clientSecret: wrong
    authStyle: body
`, supplierHost, tokenURL, secret, tokenURL))
}
