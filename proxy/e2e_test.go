package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlainHTTPGetsTokenAndKeepsTheRest(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "drop me")
		w.Header().Set("X-Upstream", "yes")
		_, _ = io.WriteString(w, "answer")
	})
	h.route("supplier.test:80", up)

	for i := 0; i < 3; i++ {
		resp, body := h.get(nil, "http://supplier.test/v1/orders?b=2&a=1&x=%2F&y=a+b", http.Header{
			"Authorization":       {"Basic YXBwOmFwcA=="},
			"X-Custom":            {"kept"},
			"Accept-Encoding":     {"gzip, br"},
			"Connection":          {"close, X-Hop"},
			"X-Hop":               {"hop-by-hop"},
			"Keep-Alive":          {"timeout=5"},
			"Proxy-Authorization": {"Basic cHJveHk6cHJveHk="},
			"Te":                  {"gzip"},
		})
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "answer", body)
		assert.Equal(t, "yes", resp.Header.Get("X-Upstream"))
		assert.Empty(t, resp.Header.Get("X-Resp-Hop"), "headers the upstream named in Connection are removed")
	}
	got := up.last(t)
	assert.Equal(t, "Bearer "+testTokenPrefix+"1", got.Header.Get("Authorization"), "the token replaces the app's Authorization")
	assert.Equal(t, "/v1/orders?b=2&a=1&x=%2F&y=a+b", got.RequestURI, "path and query byte for byte")
	assert.Equal(t, "supplier.test", got.Host)
	assert.Equal(t, "kept", got.Header.Get("X-Custom"))
	assert.Equal(t, "gzip, br", got.Header.Get("Accept-Encoding"))
	for _, hop := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Te"} {
		assert.Empty(t, got.Header.Get(hop), hop)
	}
	assert.EqualValues(t, 1, h.tokens.Count.Load(), "three requests, one token request")
}

func TestUnmatchedHostPassesUntouched(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, nil, false, nil)
	h.route("public.test:80", up)
	resp, body := h.get(nil, "http://public.test/open?q=1", http.Header{"Authorization": {"Basic YXBwOmFwcA=="}})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "hello from upstream", body)
	got := up.last(t)
	assert.Equal(t, "Basic YXBwOmFwcA==", got.Header.Get("Authorization"))
	assert.Equal(t, "/open?q=1", got.RequestURI)
	assert.Zero(t, h.tokens.Count.Load(), "no token is fetched for an unmatched host")
}

func TestUnmatchedReject(t *testing.T) {
	h := newHarness(t, harnessOptions{yaml: strings.Replace(defaultRoutes, "unmatched: forward", "unmatched: reject", 1)})
	up := newUpstream(t, nil, false, nil)
	h.route("public.test:80", up)
	resp, body := h.get(nil, "http://public.test/", nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, "policy", resp.Header.Get("X-Tokenproxy-Error"))
	assert.Contains(t, body, "public.test matches no route")
	assert.Empty(t, up.requests())

	_, err := h.client(h.upPool).Get("https://tunnel.test/")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Forbidden")

	resp, refused, _, _ := h.connect("tunnel.test:443")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, "policy", resp.Header.Get("X-Tokenproxy-Error"))
	assert.Contains(t, refused, "tunnel.test:443 matches no route and routes.yaml says unmatched: reject")
}

func TestInterceptedHTTPS(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, h.upCert, false, nil)
	h.route("supplier.test:443", up)

	resp, body := h.get(h.caPool, "https://supplier.test/secure?id=7", http.Header{"Authorization": {"Bearer app-own"}})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "hello from upstream", body)
	require.NotNil(t, resp.TLS)
	assert.Equal(t, "tokenproxy interception CA", resp.TLS.PeerCertificates[0].Issuer.CommonName)
	assert.Equal(t, []string{"supplier.test"}, resp.TLS.PeerCertificates[0].DNSNames)
	got := up.last(t)
	assert.True(t, got.TLS)
	assert.Equal(t, "Bearer "+testTokenPrefix+"1", got.Header.Get("Authorization"))
	assert.Equal(t, "/secure?id=7", got.RequestURI)
}

func TestTunnelledHTTPSIsNotIntercepted(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, h.upCert, false, nil)
	h.route("tunnel.test:443", up)
	resp, _ := h.get(h.upPool, "https://tunnel.test/", http.Header{"Authorization": {"Bearer app-own"}})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, resp.TLS.PeerCertificates[0].Equal(h.upCert.Leaf), "the app sees the upstream's own certificate")
	assert.Equal(t, "Bearer app-own", up.last(t).Header.Get("Authorization"))
	assert.Zero(t, h.tokens.Count.Load())
}

func TestUpstreamTLSRoute(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, h.upCert, false, nil)
	h.route("secure.test:443", up)
	resp, _ := h.get(nil, "http://secure.test/over-tls", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	got := up.last(t)
	assert.True(t, got.TLS, "the app's http:// request went upstream over https")
	assert.Equal(t, "Bearer "+testTokenPrefix+"1", got.Header.Get("Authorization"))
}

func TestCacheFalseFetchesEveryTime(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, nil, false, nil)
	h.route("fresh.test:80", up)
	h.get(nil, "http://fresh.test/", nil)
	h.get(nil, "http://fresh.test/", nil)
	assert.EqualValues(t, 2, h.tokens.Count.Load())
	assert.Equal(t, "Bearer "+testTokenPrefix+"2", up.last(t).Header.Get("Authorization"))
}

// In a pod, HTTP_PROXY points at tokenproxy itself: no transport of tokenproxy may read it. (A request
// cannot show this: http.ProxyFromEnvironment skips loopback targets and reads the environment only once per
// process, so the transports are checked themselves.)
func TestNeverUsesProxyEnvironment(t *testing.T) {
	// goproxy reads HTTPS_PROXY when its server is made, and chains CONNECTs through it only when it is set.
	for _, name := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		t.Setenv(name, "http://127.0.0.1:1")
	}
	h := newHarness(t, harnessOptions{})
	assert.Nil(t, h.srv.up.transport(forRoutes).Proxy, "the routes' upstream transport")
	assert.Nil(t, h.srv.up.transport(forUnmatched).Proxy, "the upstream transport of hosts of no route")
	assert.Same(t, h.srv.up.transport(forUnmatched), h.srv.gp.Tr, "goproxy holds one of those, not its own")
	assert.Nil(t, h.srv.gp.ConnectDial, "goproxy never dials CONNECT targets through HTTP_PROXY")
	assert.Nil(t, h.srv.gp.ConnectDialWithReq)
}

func TestHostMismatchInsideTunnelIsRejected(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, h.upCert, false, nil)
	h.route("supplier.test:443", up)
	h.route("tunnel.test:443", up)
	for _, host := range []string{"tunnel.test", "supplier.test:8443", "attacker.example"} {
		tc, br := h.connectTLS("supplier.test:443")
		_, err := io.WriteString(tc, "GET /steal HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode, host)
		assert.Equal(t, "policy", resp.Header.Get("X-Tokenproxy-Error"))
		assert.Contains(t, string(body), "was opened (CONNECT) for supplier.test:443")
	}
	assert.Empty(t, up.requests(), "no request left the proxy")
	assert.Zero(t, h.tokens.Count.Load(), "no token was fetched")

	// The same tunnel with the right Host works, with or without the default port.
	tc, br := h.connectTLS("supplier.test:443")
	_, err := io.WriteString(tc, "GET /ok HTTP/1.1\r\nHost: Supplier.Test:443\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestConnectToRouteWithoutMITMIsRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{noMITM: true})
	assert.Contains(t, strings.Join(h.srv.Warnings(), "\n"), "no mitm section")
	resp, body, _, _ := h.connect("supplier.test:443")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, body, `belongs to route "orders", but routes.yaml has no mitm section`)
}

// Proxy-Authorization is for the proxy: never forwarded, on plain requests or inside an intercepted
// connection.
func TestProxyAuthorizationNeverReachesTheUpstream(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			up := h.upstreamFor(sc.tls, false, nil)
			h.route(sc.hostport, up)
			resp, _ := h.get(h.caPool, sc.scheme+"://supplier.test/", http.Header{"Proxy-Authorization": {"Basic c2VjcmV0OnNlY3JldA=="}})
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Empty(t, up.last(t).Header.Get("Proxy-Authorization"))
		})
	}
}
