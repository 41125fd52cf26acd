package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawRequest writes request bytes to the proxy port as they are and reads the answer.
func (h *harness) rawRequest(t *testing.T, request string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", h.proxyURL.Host)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(c, request)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// The probe's finding: `İ` lower-cases to `i` with strings.ToLower, while the transport dials the name's
// IDNA form, another domain. Matched in the canonical form, the look-alike is another host: no token.
func TestALookAlikeHostIsAnotherHost(t *testing.T) {
	const lookAlike = "suppl\u0130er.test" // "supplİer.test"
	const punycode = "xn--supplier-t0e.test"
	h := newHarness(t, harnessOptions{})
	route, attacker := newUpstream(t, nil, false, nil), newUpstream(t, nil, false, nil)
	h.route("supplier.test:80", route)
	h.route(punycode+":80", attacker)

	// Go's server refuses non-ASCII in Host; the URL's host is what decides, so the probe sent it there.
	resp, _ := h.rawRequest(t, "GET http://"+lookAlike+"/x HTTP/1.1\r\nHost: supplier.test\r\n\r\n")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "forwarded as the host it is (unmatched: forward)")
	got := attacker.last(t)
	assert.Empty(t, got.Header.Get("Authorization"), "the look-alike got no token")
	assert.Equal(t, punycode, got.Host, "Host is the name that was dialled")
	assert.Empty(t, route.requests())
	assert.Zero(t, h.tokens.Count.Load(), "no token was even fetched")

	// The same through CONNECT: a tunnel to the look-alike, never an interception with the route's token.
	tlsAttacker := newUpstream(t, h.upCert, false, nil)
	h.route(punycode+":443", tlsAttacker)
	c, _ := h.rawConnectWithHost(lookAlike+":443", "supplier.test:443")
	tc := tls.Client(c, &tls.Config{ServerName: "supplier.test", RootCAs: h.upPool}) // the attacker's own certificate
	require.NoError(t, tc.Handshake(), "a tunnel, not tokenproxy's certificate")
	_, err := io.WriteString(tc, "GET /x HTTP/1.1\r\nHost: "+punycode+"\r\n\r\n")
	require.NoError(t, err)
	resp, err = http.ReadResponse(bufio.NewReader(tc), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, tlsAttacker.last(t).Header.Get("Authorization"))
	assert.Zero(t, h.tokens.Count.Load())
	assert.Contains(t, h.logs.String(), "host="+punycode+":443", "the log names the host that was dialled")
}

// A client limited to a route reaches only its hosts: a look-alike of one is no host of the route.
func TestAGatewayClientLimitedToARouteCannotReachALookAlike(t *testing.T) {
	h := newHarness(t, harnessOptions{yaml: clientRoutes})
	attacker := newUpstream(t, nil, false, nil)
	h.route("xn--supplier-t0e.test:80", attacker)
	resp, err := h.clientAs("127.0.0.2", "", "").Get("http://suppl\u0130er.test/x")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Empty(t, attacker.requests())
	assert.Equal(t, 1.0, h.metrics.get("denied route"))
}

// rawConnectWithHost sends CONNECT target with a Host header of its own (Go's server allows only ASCII
// there, while the request line may carry any bytes) and returns the tunnel after the 200.
func (h *harness) rawConnectWithHost(target, host string) (net.Conn, *bufio.Reader) {
	h.t.Helper()
	c, err := net.Dial("tcp", h.proxyURL.Host)
	require.NoError(h.t, err)
	h.t.Cleanup(func() { _ = c.Close() })
	require.NoError(h.t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	require.NoError(h.t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	require.NoError(h.t, err)
	require.Equal(h.t, http.StatusOK, resp.StatusCode)
	return c, br
}

// A route written in Unicode is its punycode: both spellings of a request reach it, dialled as punycode.
func TestARouteWrittenInUnicodeMatchesItsPunycode(t *testing.T) {
	h := newHarness(t, harnessOptions{yaml: `
unmatched: reject
routes:
  - name: books
    hosts: ["Bücher.test"]
    tokenUrl: {{TOKEN_URL}}
    clientId: buyer
    clientSecret: ` + testClientSecret + `
`})
	up := newUpstream(t, nil, false, nil)
	h.route("xn--bcher-kva.test:80", up)
	for _, written := range []string{"xn--bcher-kva.test", "bücher.test", "BÜCHER.test.", "b\u00FCcher.test:80"} {
		resp, body := h.rawRequest(t, "GET http://"+written+"/x HTTP/1.1\r\nHost: x\r\n\r\n")
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", written, body)
		got := up.last(t)
		assert.True(t, strings.HasPrefix(got.Header.Get("Authorization"), "Bearer "+testTokenPrefix), written)
		assert.Contains(t, []string{"xn--bcher-kva.test", "xn--bcher-kva.test:80"}, got.Host, written)
	}
}

// A host with no single meaning is refused before anything is matched, fetched or dialled.
func TestAHostWithoutACanonicalFormIsRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, nil, false, nil)
	h.route("supplier.test:80", up)
	for _, host := range []string{"sup\u200Dplier.test", "127.1", "0x7f.0.0.1", "[fe80::1%25lo]"} {
		resp, body := h.rawRequest(t, "GET http://"+host+"/x HTTP/1.1\r\nHost: x\r\n\r\n")
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, host)
		assert.Equal(t, "policy", resp.Header.Get("X-Tokenproxy-Error"), host)
		assert.Contains(t, body, "cannot be forwarded", host)
	}
	c, err := net.Dial("tcp", h.proxyURL.Host)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "CONNECT sup\u200Dplier.test:443 HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	body := string(raw)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body, "cannot be reached")
	assert.Empty(t, up.requests())
	assert.Zero(t, h.tokens.Count.Load())
}

// Inside an intercepted HTTP/2 connection, :authority must name the host of :path and of the CONNECT:
// otherwise 421, and nothing leaves (the probe's domain fronting: the supplier got the token with
// Host: evil.example).
func TestHTTP2AuthorityMustNameTheHostOfTheRequest(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, h.upCert, false, nil)
	h.route("supplier.test:443", up)
	h.route("evil.example:443", up)
	c, _ := h.rawConnect("supplier.test:443")
	h2, err := startRawH2(c, "supplier.test", h.caPool)
	require.NoError(t, err)
	defer h2.Close()
	get := func(authority, path string) h2Answer {
		ans, err := h2.do([2]string{":method", "GET"}, [2]string{":scheme", "https"}, [2]string{":authority", authority}, [2]string{":path", path})
		require.NoError(t, err)
		return ans
	}
	for _, tt := range []struct{ authority, path string }{
		{"evil.example", "https://supplier.test/x"},       // fronting: the URL names the route, Host another host
		{"supplier.test", "https://evil.example/x"},       // the other way round
		{"evil.example", "/x"},                            // another host on this connection: RFC 9113 §9.1.1
		{"suppl\u0130er.test", "/x"},                      // the look-alike
		{"supplier.test:8443", "/x"},                      // another port
		{"supplier.test", "https://supplier.test:8443/x"}, // another port in the URL only
	} {
		ans := get(tt.authority, tt.path)
		assert.Equal(t, http.StatusMisdirectedRequest, ans.status, "%+v", tt)
		assert.Equal(t, "policy", ans.header["x-tokenproxy-error"], "%+v", tt)
	}
	assert.Empty(t, up.requests(), "nothing left the proxy")
	assert.Zero(t, h.tokens.Count.Load())

	// The connection is still good for its own host, in any spelling of it.
	for _, authority := range []string{"supplier.test", "SUPPLIER.test.", "supplier.test:443"} {
		ans := get(authority, "/ok")
		assert.Equal(t, http.StatusOK, ans.status, authority)
	}
	require.Len(t, up.requests(), 3)
	for _, got := range up.requests() {
		assert.Contains(t, []string{"supplier.test", "supplier.test:443"}, got.Host)
		assert.True(t, strings.HasPrefix(got.Header.Get("Authorization"), "Bearer "+testTokenPrefix))
	}
}

// TRACE and TRACK to a route's host are refused: a supplier echoing the request would show the app the
// route's token. To other hosts they pass as before.
func TestTraceIsNotForwardedToARoute(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, nil, false, nil)
	h.route("supplier.test:80", up)
	h.route("other.test:80", up)
	for _, request := range []string{
		"TRACE http://supplier.test/x HTTP/1.1\r\nHost: supplier.test\r\n\r\n",
		"TRACK http://supplier.test/x HTTP/1.1\r\nHost: supplier.test\r\n\r\n",
		"trace http://supplier.test/x HTTP/1.1\r\nHost: supplier.test\r\n\r\n", // servers that fold case echo this too
		"GET http://supplier.test/x HTTP/1.1\r\nHost: supplier.test\r\nX-HTTP-Method-Override: trace\r\n\r\n",
	} {
		resp, body := h.rawRequest(t, request)
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, request)
		assert.Contains(t, body, "route \"orders\"")
	}
	assert.Empty(t, up.requests())
	assert.Zero(t, h.tokens.Count.Load())
	resp, _ := h.rawRequest(t, "TRACE http://other.test/x HTTP/1.1\r\nHost: other.test\r\n\r\n")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "TRACE", up.last(t).Method)
}

// upstreamTLS sends an http:// request upstream over https, to port 443 unless the URL names a port: the
// route must name that port too, or its token would reach a port none of its patterns matched.
func TestUpstreamTLSGoesOnlyToAPortTheRouteNames(t *testing.T) {
	h := newHarness(t, harnessOptions{yaml: `
unmatched: forward
routes:
  - name: port80
    hosts: ["supplier.test:80"]
    tokenUrl: {{TOKEN_URL}}
    clientId: buyer
    clientSecret: ` + testClientSecret + `
    upstreamTLS: true
  - name: other443
    hosts: ["supplier.test:443"]
    tokenUrl: {{TOKEN_URL}}
    clientId: buyer
    clientSecret: ` + testClientSecret + `
`})
	up := newUpstream(t, h.upCert, false, nil)
	h.route("supplier.test:443", up)
	resp, body := h.rawRequest(t, "GET http://supplier.test/x HTTP/1.1\r\nHost: supplier.test\r\n\r\n")
	assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode, body)
	assert.Contains(t, body, `route "port80" sends this request upstream over https to supplier.test:443`)
	assert.Empty(t, up.requests(), "port 443 is another route's")
	assert.Zero(t, h.tokens.Count.Load())
}
