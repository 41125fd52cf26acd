package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const clientRoutes = `
listen: 0.0.0.0:3128
{{MITM}}
clients:
  - name: batch
    cidrs: [127.0.0.2]
    routes: [orders]
  - name: billing
    proxyAuth: {username: billing, password: pw-billing}
    routes: [secure]
  - name: ops
    cidrs: [127.0.0.3/32]
    proxyAuth: {username: ops, password: pw-ops}
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
`

// clientAs is a client that connects from a loopback address of its own and may send proxy credentials.
func (h *harness) clientAs(from, user, password string) *http.Client {
	proxyURL := *h.proxyURL
	if user != "" {
		proxyURL.User = url.UserPassword(user, password)
	}
	c := h.client(h.caPool)
	tr := c.Transport.(*http.Transport)
	tr.Proxy = http.ProxyURL(&proxyURL)
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext
	return c
}

func TestClientRules(t *testing.T) {
	h := newHarness(t, harnessOptions{yaml: clientRoutes})
	plain := newUpstream(t, nil, false, nil)
	h.route("supplier.test:80", plain)
	h.route("secure.test:80", plain)
	h.route("other.test:80", plain)
	secure := newUpstream(t, h.upCert, false, nil)
	h.route("secure.test:443", secure)

	get := func(c *http.Client, rawURL string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(rawURL)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	batch := h.clientAs("127.0.0.2", "", "")
	billing := h.clientAs("127.0.0.1", "billing", "pw-billing")

	// Allowed by address.
	resp, _ := get(batch, "http://supplier.test/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "Bearer "+testTokenPrefix+"1", plain.last(t).Header.Get("Authorization"))
	resp, body := get(batch, "http://other.test/")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a client limited to some routes reaches no other host")
	assert.Contains(t, body, `client "batch" may use only the routes its entry lists, and other.test matches no route`)
	ops := h.clientAs("127.0.0.3", "ops", "pw-ops")
	resp, _ = get(ops, "http://other.test/")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a client without a routes limit may reach hosts of no route")
	resp, _ = get(h.clientAs("127.0.0.2", "someone", "meant-for-another-proxy"), "http://supplier.test/")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "credentials of no client's user: the address decides")

	// Allowed by credentials; they never reach the supplier.
	resp, _ = get(billing, "http://secure.test/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	got := plain.last(t)
	assert.Empty(t, got.Header.Get("Proxy-Authorization"))
	assert.Equal(t, "Bearer "+testTokenPrefix+"1", got.Header.Get("Authorization"))

	// Nobody known: 407 with a challenge, since some clients log in.
	resp, body = get(h.clientAs("127.0.0.1", "", ""), "http://supplier.test/")
	assert.Equal(t, http.StatusProxyAuthRequired, resp.StatusCode)
	assert.Equal(t, `Basic realm="tokenproxy"`, resp.Header.Get("Proxy-Authenticate"))
	assert.Equal(t, "policy", resp.Header.Get("X-Tokenproxy-Error"))
	assert.Contains(t, body, "send Proxy-Authorization")

	// A wrong password: 407 again.
	resp, _ = get(h.clientAs("127.0.0.1", "billing", "guess"), "http://secure.test/")
	assert.Equal(t, http.StatusProxyAuthRequired, resp.StatusCode)

	// A route the client may not use: 403.
	resp, body = get(billing, "http://supplier.test/")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, body, `client "billing" may not use route "orders"`)
	resp, _ = get(batch, "http://secure.test/")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)

	// Right credentials from an address the client does not connect from: 403.
	resp, body = get(h.clientAs("127.0.0.1", "ops", "pw-ops"), "http://supplier.test/")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, body, "127.0.0.1 is not an address this proxy's clients list allows")
	resp, _ = get(ops, "http://supplier.test/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// https: the rules apply to the CONNECT; the requests inside follow them, and a Proxy-Authorization
	// an app sends inside never reaches the supplier either.
	inside, err := http.NewRequest(http.MethodGet, "https://secure.test/inside", nil)
	require.NoError(t, err)
	inside.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("billing:pw-billing")))
	resp, err = billing.Do(inside)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	got = secure.last(t)
	assert.Equal(t, "/inside", got.RequestURI)
	assert.Empty(t, got.Header.Get("Proxy-Authorization"))
	assert.Equal(t, "Bearer "+testTokenPrefix+"1", got.Header.Get("Authorization"))
	_, err = h.clientAs("127.0.0.1", "", "").Get("https://secure.test/")
	require.Error(t, err, "a CONNECT without credentials is refused")
	assert.Contains(t, err.Error(), "Proxy Authentication Required")
	_, err = batch.Get("https://secure.test/")
	require.Error(t, err, "batch may not use route secure, over https neither")
	assert.Contains(t, err.Error(), "Forbidden")
	// A tunnel to a host of no route: ops may open one, batch may not.
	h.route("tunnel.test:443", newUpstream(t, h.upCert, false, nil))
	connectFrom := func(from, proxyAuth string) int {
		t.Helper()
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext(context.Background(), "tcp", h.proxyURL.Host)
		require.NoError(t, err)
		defer c.Close()
		_, err = io.WriteString(c, "CONNECT tunnel.test:443 HTTP/1.1\r\nHost: tunnel.test:443\r\n"+proxyAuth+"\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusForbidden, connectFrom("127.0.0.2", ""), "batch tunnels nowhere")
	assert.Equal(t, http.StatusOK, connectFrom("127.0.0.3", "Proxy-Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte("ops:pw-ops"))+"\r\n"))

	for _, n := range plain.requests() {
		assert.Empty(t, n.Header.Get("Proxy-Authorization"))
	}
	assert.Equal(t, 3.0, h.metrics.get("denied credentials"))
	assert.Equal(t, 5.0, h.metrics.get("denied route"), "3 routes refused, 2 hosts of no route")
	assert.Equal(t, 1.0, h.metrics.get("denied address"))
	assert.Equal(t, 9.0, h.metrics.get("errors - policy")+h.metrics.get("errors orders policy")+h.metrics.get("errors secure policy"),
		"every denial is also one of tokenproxy's policy answers")
	logs := h.logs.String()
	assert.Contains(t, logs, `msg="request refused by the clients rules" reason=route client=billing remote=127.0.0.1 route=orders host=supplier.test`)
	assert.Contains(t, logs, "client=billing")
	assert.NotContains(t, logs, "pw-billing")
	assert.True(t, strings.Contains(logs, `msg=request route=orders method=GET host=supplier.test path=/ status=200`))
}

// A reload that changes the credentials of the client an intercepted connection was opened for (or removes
// it) refuses the requests still coming on it, and ends the connection: credentials go with a CONNECT, so
// the app must open a new one. Over HTTP/1 the answer says Connection: close; over HTTP/2, which cannot,
// the connection's server sends GOAWAY.
func TestAReloadThatChangesAClientEndsItsInterceptedConnections(t *testing.T) {
	fetch := func(c *http.Client, rawURL string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(rawURL)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body) // read to the end: the connection is kept for the next request
		resp.Body.Close()
		return resp, string(body)
	}
	for _, proto := range []int{1, 2} {
		t.Run(fmt.Sprintf("HTTP/%d", proto), func(t *testing.T) {
			h := newHarness(t, harnessOptions{yaml: clientRoutes})
			secure := newUpstream(t, h.upCert, false, nil)
			h.route("secure.test:443", secure)
			billing := h.clientAs("127.0.0.1", "billing", "pw-billing")
			tr := billing.Transport.(*http.Transport)
			tr.ForceAttemptHTTP2 = proto == 2
			var connects atomic.Int32
			tr.OnProxyConnectResponse = func(context.Context, *url.URL, *http.Request, *http.Response) error {
				connects.Add(1)
				return nil
			}
			resp, _ := fetch(billing, "https://secure.test/before")
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, proto, resp.ProtoMajor)

			h.swap(strings.Replace(clientRoutes, "proxyAuth: {username: billing, password: pw-billing}", "proxyAuth: {username: billing, password: rotated}", 1))
			resp, body := fetch(billing, "https://secure.test/after")
			assert.Equal(t, http.StatusProxyAuthRequired, resp.StatusCode)
			assert.Equal(t, proto, resp.ProtoMajor)
			assert.Equal(t, proto == 1, resp.Close, "HTTP/1: the connection closes with the answer")
			assert.Contains(t, body, "the clients rules changed since this connection was opened, so it is closed")
			assert.Contains(t, body, "send Proxy-Authorization (Basic)")
			assert.EqualValues(t, 1, connects.Load(), "the refusal came on the connection opened before the reload")

			_, err := billing.Get("https://secure.test/again")
			require.Error(t, err, "a new CONNECT with the old password is refused")
			assert.Contains(t, err.Error(), "Proxy Authentication Required")
			assert.EqualValues(t, 2, connects.Load(), "the old connection was ended: the request went to a new CONNECT")
			assert.Len(t, secure.requests(), 1, "only the request before the reload reached the supplier")

			// A client known by its address only, whose address a reload no longer allows: 403, ended too.
			orders := newUpstream(t, h.upCert, false, nil)
			h.route("supplier.test:443", orders)
			batch := h.clientAs("127.0.0.2", "", "")
			batch.Transport.(*http.Transport).ForceAttemptHTTP2 = proto == 2
			resp, _ = fetch(batch, "https://supplier.test/before")
			require.Equal(t, http.StatusOK, resp.StatusCode)
			h.swap(strings.Replace(clientRoutes, "cidrs: [127.0.0.2]", "cidrs: [127.0.0.9]", 1))
			resp, body = fetch(batch, "https://supplier.test/after")
			assert.Equal(t, http.StatusForbidden, resp.StatusCode)
			assert.Contains(t, body, "127.0.0.2 is not an address this proxy's clients list allows")
			_, err = batch.Get("https://supplier.test/again")
			require.Error(t, err)
			assert.Contains(t, err.Error(), "Proxy Authentication Required", "a new CONNECT from an address no client has: some clients log in")
			assert.Len(t, orders.requests(), 1)
		})
	}
}
