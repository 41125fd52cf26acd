package binary

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

const opsSecret = "ops-secret-4411"

// newOpsTokens is a token endpoint that wants a client secret in the body and names its tokens by the
// secret it was given (never containing it), numbered by the request: tok-a-1 for the first request with
// a secret accepted as tok-a. Its path /down is down for an hour (the backoff lasts as long as Retry-After
// says); /refuse refuses every client.
func newOpsTokens(t *testing.T, accepted map[string]string) *testkit.TokenServer {
	return testkit.NewTokenServer(t, func(n int64, req testkit.TokenRequest, w http.ResponseWriter) {
		name, ok := accepted[req.Form.Get("client_secret")]
		switch {
		case req.Path == "/down":
			w.Header().Set("Retry-After", "3600")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"temporarily_unavailable"}`)
		case !ok || req.Path == "/refuse":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
		default:
			_, _ = fmt.Fprintf(w, `{"access_token":"%s-%d","expires_in":600}`, name, n)
		}
	})
}

// secretsSent are the client secrets a token endpoint received, in order.
func secretsSent(tokens *testkit.TokenServer) []string {
	var sent []string
	for _, req := range tokens.Requests() {
		sent = append(sent, req.Form.Get("client_secret"))
	}
	return sent
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
func checkServers(t *testing.T) (tokens *testkit.TokenServer, supplier *httptest.Server) {
	tokens = testkit.NewTokenServer(t, func(_ int64, req testkit.TokenRequest, w http.ResponseWriter) {
		if req.Form.Get("client_secret") != binSecret {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"unknown client"}`)
			return
		}
		_, _ = io.WriteString(w, `{"access_token":"check-token-value","expires_in":3600,"scope":"orders.read"}`)
	})
	supplier = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer check-token-value" || r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(supplier.Close)
	return tokens, supplier
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
