package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlainHTTPInsideInterceptedTunnelIsRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, nil, false, nil)
	h.route("supplier.test:443", up)
	c, br := h.rawConnect("supplier.test:443")
	_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: supplier.test:443\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(body), "must speak TLS")
	assert.Empty(t, up.requests(), "the token never travels unencrypted")
	assert.Zero(t, h.tokens.Count.Load())
	assert.Equal(t, 1.0, h.metrics.get("requests orders 400"), "counted under the route the CONNECT named")
	assert.Equal(t, 1.0, h.metrics.get("errors orders policy"))
}

func TestAbsoluteFormRequestForAnotherHostInsideTunnelIsRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, h.upCert, false, nil)
	h.route("supplier.test:443", up)
	h.route("tunnel.test:443", up)
	tc, br := h.connectTLS("supplier.test:443")
	_, err := io.WriteString(tc, "GET https://tunnel.test/steal HTTP/1.1\r\nHost: supplier.test\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
	assert.Empty(t, up.requests())
}

// echoUpgrade is an upstream that switches protocols and echoes one line upper-cased, then closes.
func echoUpgrade(w http.ResponseWriter, r *http.Request) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade, X-Hop\r\nX-Hop: secret-hop\r\nUpgrade: websocket\r\n\r\n")
	_ = brw.Flush()
	line, _ := brw.ReadString('\n')
	_, _ = io.WriteString(conn, strings.ToUpper(line))
}

// upgradeAndEcho asks for a websocket upgrade of target over conn, checks the 101 the app sees, and
// returns the upstream's echo of line over the upgraded connection.
func upgradeAndEcho(t *testing.T, conn io.Writer, br *bufio.Reader, target, line string) string {
	t.Helper()
	_, err := io.WriteString(conn, "GET "+target+" HTTP/1.1\r\nHost: supplier.test\r\nConnection: Upgrade, X-App-Hop\r\n"+
		"X-App-Hop: drop\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("X-Hop"), "headers named in Connection are removed from a 101 too")
	_, err = io.WriteString(conn, line)
	require.NoError(t, err)
	echoed, err := br.ReadString('\n')
	require.NoError(t, err)
	return echoed
}

// assertUpgradeArrived checks what the upstream received: the token and the upgrade, no other hop header.
func assertUpgradeArrived(t *testing.T, up *upstream) {
	got := up.last(t)
	assert.Equal(t, "Bearer "+testTokenPrefix+"1", got.Header.Get("Authorization"))
	assert.Equal(t, "Upgrade", got.Header.Get("Connection"))
	assert.Equal(t, "websocket", got.Header.Get("Upgrade"))
	assert.Empty(t, got.Header.Get("X-App-Hop"))
}

func TestWebsocketOverInterceptedTunnel(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, h.upCert, true, echoUpgrade)
	h.route("supplier.test:443", up)
	tc, br := h.connectTLS("supplier.test:443")
	assert.Equal(t, "OVER TLS\n", upgradeAndEcho(t, tc, br, "/ws", "over tls\n"))
	assertUpgradeArrived(t, up)
}

func TestPlainWebsocketEndsWhenTheUpstreamCloses(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, nil, true, echoUpgrade)
	h.route("supplier.test:80", up)
	c, err := net.Dial("tcp", h.proxyURL.Host)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(c)
	assert.Equal(t, "BYE\n", upgradeAndEcho(t, c, br, "http://supplier.test/ws", "bye\n"))
	assertUpgradeArrived(t, up)
	// The upstream has closed; the app's connection must end too, well before the test's deadline.
	_, err = br.ReadByte()
	assert.ErrorIs(t, err, io.EOF)
}

func TestSilentClientsAreDisconnected(t *testing.T) {
	h := newHarness(t, harnessOptions{readHeaderTimeout: 300 * time.Millisecond, clientIdleTimeout: 500 * time.Millisecond})
	h.route("tunnel.test:443", newUpstream(t, h.upCert, false, nil))

	for _, target := range []string{"supplier.test:443", "tunnel.test:443"} {
		t.Run(target, func(t *testing.T) {
			_, br := h.rawConnect(target)
			start := time.Now()
			_, err := br.ReadByte() // we never speak: the proxy must hang up on us
			require.Error(t, err)
			var ne net.Error
			assert.False(t, errors.As(err, &ne) && ne.Timeout(), "closed by the proxy, not by the test's own deadline: %v", err)
			assert.Less(t, time.Since(start), 5*time.Second)
		})
	}
}

func TestShutdownDrainsBusyInterceptedConnections(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.route("supplier.test:443", newUpstream(t, h.upCert, false, nil))
	client := h.client(h.caPool) // one keep-alive connection, used back to back

	var wg sync.WaitGroup
	var ok, failed int
	busy := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 100000; i++ {
			resp, err := client.Get("https://supplier.test/loop")
			if err != nil {
				failed++
				return // the proxy closed after its last answer and refuses new connections
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			ok++
			if ok == 5 {
				close(busy)
			}
		}
	}()
	<-busy
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, h.srv.Shutdown(ctx), "the intercepted connection drained before the deadline")
	assert.Less(t, time.Since(start), 5*time.Second)
	wg.Wait()
	assert.GreaterOrEqual(t, ok, 5)
	assert.Equal(t, 1, failed)
}

// The tunnel for an unmatched host is byte-for-byte: curl sees the upstream's own certificate.
func TestCurlTunnelledHTTPS(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, h.upCert, false, nil)
	h.route("tunnel.test:443", up)
	pem := writeCertPEM(t, h.upCert)
	out := curl(t, "-x", "http://"+h.proxyURL.Host, "--cacert", pem, "-H", "Authorization: Bearer app-own", "https://tunnel.test/t")
	assert.Contains(t, out, "hello from upstream")
	assert.Equal(t, "Bearer app-own", up.last(t).Header.Get("Authorization"))
	assert.Zero(t, h.tokens.Count.Load())
}
