package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const gatewayRoutes = `
listen: 0.0.0.0:3128
unmatched: forward
{{MITM}}
clients:
  - name: pods
    cidrs: [127.0.0.0/8]
routes:
  - name: local
    hosts: ["127.0.0.1:%d"]
    tokenUrl: {{TOKEN_URL}}
    clientId: buyer
    clientSecret: ` + testClientSecret + `
`

// A gateway (a proxy listening beyond loopback) does not take its clients to its own machine: loopback,
// link-local (the cloud metadata service), its own listeners. The address checked is the one the socket
// connects to, so no spelling and no name leads around it; a host a route names is reached wherever it is.
func TestAGatewayDoesNotProxyToItsOwnMachine(t *testing.T) {
	named, unnamed := newUpstream(t, nil, false, nil), newUpstream(t, nil, false, nil)
	namedPort := named.Listener.Addr().(*net.TCPAddr).Port
	port := unnamed.Listener.Addr().(*net.TCPAddr).Port
	h := newHarness(t, harnessOptions{yaml: fmt.Sprintf(gatewayRoutes, namedPort), systemDialer: true})
	c := h.client(h.caPool)

	for _, target := range []string{
		fmt.Sprintf("http://127.0.0.1:%d/", port),
		fmt.Sprintf("http://localhost:%d/", port),          // a name that resolves to loopback
		fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/", port), // IPv4-mapped
		fmt.Sprintf("http://127.0.0.2:%d/", port),          // all of 127/8
		fmt.Sprintf("http://[::1]:%d/", port),
		"http://169.254.169.254/latest/meta-data/", // refused before any packet leaves
		"http://[fe80::1]:80/",
		"http://0.0.0.0:80/",
		"http://[64:ff9b::7f00:1]:80/", // NAT64 of 127.0.0.1
		"http://" + h.proxyURL.Host + "/routes",
	} {
		resp, err := c.Get(target)
		require.NoError(t, err, target)
		body := readAll(t, resp)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, target)
		assert.Equal(t, "policy", resp.Header.Get("X-Tokenproxy-Error"), target)
		assert.Contains(t, body, "reaches such addresses only for hosts a route names", target)
	}
	resp, body, _, _ := h.connect(fmt.Sprintf("127.0.0.1:%d", port))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, body, "proxy's own machine")
	assert.Empty(t, unnamed.requests(), "nothing reached the loopback upstream")

	// The route's own host, on loopback, is reached: the operator named it.
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/x", namedPort))
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, strings.HasPrefix(named.last(t).Header.Get("Authorization"), "Bearer "+testTokenPrefix))
}

// The admin listener bound to every address is the proxy's own on any of the machine's addresses.
func TestAGatewayDoesNotProxyToItsOwnListenersOnTheMachinesAddresses(t *testing.T) {
	var external net.IP
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			external = ipn.IP
		}
	}
	if external == nil {
		t.Skip("this machine has no address beyond loopback")
	}
	h := newHarness(t, harnessOptions{yaml: fmt.Sprintf(gatewayRoutes, 1), systemDialer: true})
	h.srv.ListensAlsoOn(&net.TCPAddr{IP: net.IPv4zero, Port: 9}) // as the admin endpoints on 0.0.0.0:9
	resp, err := h.client(h.caPool).Get(fmt.Sprintf("http://%s:9/metrics", external))
	require.NoError(t, err)
	body := readAll(t, resp)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	assert.Contains(t, body, "its own listeners")
}

// A sidecar (listening on loopback) serves only its own pod: it reaches loopback as before.
func TestASidecarStillReachesLoopback(t *testing.T) {
	up := newUpstream(t, nil, false, nil)
	h := newHarness(t, harnessOptions{systemDialer: true})
	resp, err := h.client(h.caPool).Get("http://" + up.Listener.Addr().String() + "/")
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Len(t, up.requests(), 1)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// A connection dialled for a route's host (which may be on loopback) lives in the routes' pool only: once a
// reload takes the route away, a request for that host is of no route and is dialled, and refused, anew.
func TestAGatewayForgetsARoutesLoopbackHostAfterAReload(t *testing.T) {
	named := newUpstream(t, nil, false, nil)
	port := named.Listener.Addr().(*net.TCPAddr).Port
	h := newHarness(t, harnessOptions{yaml: fmt.Sprintf(gatewayRoutes, port), systemDialer: true})
	c := h.client(h.caPool)
	target := fmt.Sprintf("http://127.0.0.1:%d/internal", port)
	resp, err := c.Get(target)
	require.NoError(t, err)
	readAll(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode, "a route names it")

	h.swap(fmt.Sprintf(gatewayRoutes, 1)) // the route now names another port
	for range 3 {
		resp, err = c.Get(target)
		require.NoError(t, err)
		readAll(t, resp)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "loopback is no route's host any more")
	}
	assert.Len(t, named.requests(), 1, "nothing more reached loopback")
}

// A route lets a gateway reach loopback only for a host it names exactly (never through a wildcard:
// config's TestNamesExactly); the metadata service and link-local addresses stay out of reach whatever a
// route names.
func TestARoutesExemptionIsNarrow(t *testing.T) {
	up := newUpstream(t, nil, false, nil)
	port := up.Listener.Addr().(*net.TCPAddr).Port
	h := newHarness(t, harnessOptions{systemDialer: true, yaml: fmt.Sprintf(`
listen: 0.0.0.0:3128
unmatched: forward
clients:
  - name: pods
    cidrs: [127.0.0.0/8]
routes:
  - name: metadata
    hosts: ["169.254.169.254", "[fe80::1]"]
    tokenUrl: {{TOKEN_URL}}
    clientId: buyer
    clientSecret: %[2]s
  - name: exact
    hosts: ["localhost:%[1]d"]
    tokenUrl: {{TOKEN_URL}}
    clientId: buyer
    clientSecret: %[2]s
`, port, testClientSecret)})
	c := h.client(h.caPool)
	for _, target := range []string{
		"http://169.254.169.254/latest/meta-data/",
		"http://[fe80::1]/",
	} {
		resp, err := c.Get(target)
		require.NoError(t, err, target)
		body := readAll(t, resp)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%s: %s", target, body)
		assert.Contains(t, body, "proxy's own machine", target)
	}
	assert.Empty(t, up.requests())
	resp, err := c.Get(fmt.Sprintf("http://localhost:%d/", port))
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "named exactly, loopback is reached")
	assert.Len(t, up.requests(), 1)
}
