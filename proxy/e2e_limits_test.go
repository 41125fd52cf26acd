package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A gateway closes, as they arrive, connections over its limits: per source address and in all. The
// connections it keeps are served, and a closed one makes room again. (Loopback accepts any 127/8 source
// address, so two addresses are two apps.)
func TestGatewayConnectionLimits(t *testing.T) {
	h := newHarness(t, harnessOptions{yaml: defaultRoutes + `
limits: {maxConnections: 5, maxConnectionsPerAddress: 3}
clients:
  - name: local
    cidrs: [127.0.0.0/8]
`})
	h.route("supplier.test:80", newUpstream(t, nil, false, nil))
	resp, _ := h.get(nil, "http://supplier.test/warm", nil) // the token cached before the baseline
	require.Equal(t, http.StatusOK, resp.StatusCode)
	h.closeIdle()
	base := measure(t)
	dial := func(from string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", h.proxyURL.Host)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	// served sends a request on c and reports whether it was answered; a refused connection is closed
	// before a byte is read.
	served := func(c net.Conn) bool {
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		_, _ = io.WriteString(c, "GET http://supplier.test/ HTTP/1.1\r\nHost: supplier.test\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	var first []net.Conn
	for range 3 {
		c := dial("127.0.0.1")
		require.True(t, served(c))
		first = append(first, c)
	}
	assert.False(t, served(dial("127.0.0.1")), "a fourth connection from one address is over its limit")
	waitUntil(t, "counted", func() bool { return h.metrics.get("refused per-address") == 1 })
	second := []net.Conn{dial("127.0.0.2"), dial("127.0.0.2")}
	for _, c := range second {
		require.True(t, served(c), "another address has connections of its own")
	}
	assert.False(t, served(dial("127.0.0.3")), "a sixth connection is over the total")
	waitUntil(t, "counted", func() bool { return h.metrics.get("refused total") == 1 })
	assert.Contains(t, h.logs.String(), "connection refused: over the connection limit")

	require.NoError(t, first[0].Close())
	waitUntil(t, "a closed connection makes room", func() bool { return h.metrics.get("connections plain") == 4 })
	assert.True(t, served(dial("127.0.0.1")))
	for _, c := range append(first[1:], second...) {
		require.NoError(t, c.Close())
	}
	h.srv.up.closeIdle() // requests in quick succession may have opened several
	backToBaseline(t, base, "the connections closed")
}

// Without limits: in routes.yaml, a gateway has defaults and a loopback sidecar without clients has none.
func TestConnectionLimitDefaults(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	total, perAddress := h.srv.connLimits()
	assert.Zero(t, total, "a sidecar on loopback")
	assert.Zero(t, perAddress)
	h.swap(defaultRoutes + "clients:\n  - name: local\n    cidrs: [127.0.0.1]\n")
	total, perAddress = h.srv.connLimits()
	assert.Equal(t, GatewayMaxConnections, total, "a proxy with clients is a gateway")
	assert.Equal(t, GatewayMaxConnectionsPerAddress, perAddress)
	h.srv.gateway.Store(true)
	h.swap(defaultRoutes + "limits: {maxConnectionsPerAddress: 1000}\nclients:\n  - name: local\n    cidrs: [127.0.0.1]\n")
	total, perAddress = h.srv.connLimits()
	assert.Equal(t, GatewayMaxConnections, total)
	assert.Equal(t, 1000, perAddress, "routes.yaml's limit")
}

// The per-address limit counts an IPv6 client by its /64, which one host commonly holds whole.
func TestConnectionsAreCountedPerIPv4AddressAndIPv6Slash64(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3": "10.1.2.3", "::ffff:10.1.2.3": "10.1.2.3", "::1": "::1",
		"2001:db8:1:2:aaaa::1": "2001:db8:1:2::", "2001:db8:1:2:ffff:ffff:ffff:ffff": "2001:db8:1:2::",
		"2001:db8:1:3::1": "2001:db8:1:3::",
	} {
		assert.Equal(t, want, sourceOf(netip.MustParseAddr(in)).String(), in)
	}
}
