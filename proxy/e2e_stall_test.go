package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stallRoutes has a route to an endless HTTP/2 supplier (also for plain http://, sent upstream over TLS)
// and one to another supplier.
const stallRoutes = `
unmatched: forward
{{MITM}}
routes:
  - name: endless
    hosts: [supplier.test]
    tokenUrl: {{TOKEN_URL}}
    clientId: buyer
    clientSecret: ` + testClientSecret + `
    upstreamTLS: true
  - name: other
    hosts: [secure.test]
    tokenUrl: {{TOKEN_URL}}
    clientId: buyer
    clientSecret: ` + testClientSecret + `
`

// askOther sends a GET to the other supplier on a kept-alive intercepted connection; it must answer
// within a second.
func askOther(t *testing.T, c *http.Client, when string) {
	t.Helper()
	start := time.Now()
	resp, err := c.Get("https://secure.test/")
	require.NoError(t, err, "the other supplier %s", when)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, when)
	t.Logf("the other supplier answered %s in %v", when, time.Since(start).Round(time.Millisecond))
}

// One app opens 250 streams of endless answers on intercepted HTTP/2 connections and grants no window:
// the proxy holds a bounded amount for them (the upstream's side says how much it sent; the heap says what
// it costs), another supplier keeps answering within a second, and when the app goes every upstream
// stream is reset, memory comes back, and the proxy never granted the upstream more connection window than
// it is configured for (a body closed twice refunds its unread bytes twice: golang/go#58456).
func TestStalledStreamsHoldABoundedAmount(t *testing.T) {
	h := newHarness(t, harnessOptions{yaml: stallRoutes, quiet: true})
	endless := newEndlessUpstream(t, h.upCert)
	h.mapHost("supplier.test:443", endless.addr())
	h.mapHost("secure.test:443", bareUpstream(t, h.upCert))
	other := h.client(h.caPool)
	other.Timeout = time.Second
	askOther(t, other, "before")
	warm := h.stallingApp("supplier.test:443") // the endless route's token is cached before the baseline
	require.NoError(t, warm.get("supplier.test", "/warm"))
	waitUntil(t, "the first endless answer", func() bool { return warm.answered.Load() == 1 })
	warm.close()
	waitUntil(t, "the warm-up stream reset", func() bool { return endless.resets.Load() == 1 })
	base := measure(t)

	const streams = 250
	apps := h.stallStreams("supplier.test:443", streams)
	// What the proxy buffers unread, as the upstream sees it: the connection window it was granted and no
	// longer has. Each stream's is full once the handler holds its first chunk and the window is whole again.
	buffered := func() int64 { return 65535 + UpstreamConnWindow - endless.connWindow.Load() }
	filled := assert.Eventually(t, func() bool { return buffered() == streams*UpstreamStreamWindow },
		30*time.Second, 10*time.Millisecond, "every stream's window filled")
	require.True(t, filled, "the upstream got %d requests, sent %d bytes, %d unread; the largest connection window granted was %d",
		endless.streams.Load(), endless.sent.Load(), buffered(), endless.maxConnWindow.Load())
	answered := func() (n int64) {
		for _, a := range apps {
			n += a.answered.Load()
		}
		return n
	}
	waitUntil(t, "every answer's headers reached the app", func() bool { return answered() == streams })
	held := measure(t)
	t.Logf("%d intercepted connections, %d stalled streams: %v (baseline %v)", len(apps), streams, held, base)
	assert.Less(t, int64(held.heap)-int64(base.heap), int64(100e6), "250 stalled streams cost less than 100 MB")
	askOther(t, other, "during the stall")

	for _, a := range apps {
		a.close()
	}
	waitUntil(t, "every upstream stream reset", func() bool { return endless.resets.Load() == 1+streams })
	askOther(t, other, "after the stall")
	h.closeIdle()
	backToBaseline(t, base, "the stalling app left")
	assert.EqualValues(t, UpstreamStreamWindow, endless.streamWindow.Load(), "the stream window the proxy grants")
	assert.LessOrEqual(t, endless.maxConnWindow.Load(), int64(65535+UpstreamConnWindow),
		"the connection window the proxy granted never exceeds its own: no unread bytes are refunded twice")

	// The upstream connection still works: the stalled streams left its window whole.
	fresh := h.stallingApp("supplier.test:443")
	require.NoError(t, fresh.get("supplier.test", "/after"))
	waitUntil(t, "an answer after the stall", func() bool { return fresh.ok.Load() == 1 })
}

// An app that reads nothing of its answer is cut after the idle timeout, on every kind of connection, and
// the upstream answer behind it is reset; an HTTP/2 stream that only waits for its upstream is not cut.
func TestAnAppThatReadsNothingIsCut(t *testing.T) {
	const idle = 300 * time.Millisecond
	newStall := func(t *testing.T) (*harness, *endlessUpstream) {
		h := newHarness(t, harnessOptions{yaml: stallRoutes, quiet: true, clientIdleTimeout: idle})
		endless := newEndlessUpstream(t, h.upCert)
		h.mapHost("supplier.test:443", endless.addr())
		return h, endless
	}
	t.Run("HTTP/2 streams with a zero window", func(t *testing.T) {
		h, endless := newStall(t)
		a := h.stallingApp("supplier.test:443")
		for i := range 5 {
			require.NoError(t, a.get("supplier.test", fmt.Sprintf("/%d", i)))
		}
		waitUntil(t, "the app's streams reset", func() bool { return a.reset.Load() == 5 })
		waitUntil(t, "the upstream's streams reset", func() bool { return endless.resets.Load() == 5 })
		select {
		case <-a.done:
			t.Fatal("the connection was closed: only its stalled streams should be")
		default:
		}
	})
	for _, intercepted := range []bool{false, true} {
		for _, second := range []bool{false, true} {
			name := "HTTP/1 plain"
			if intercepted {
				name = "HTTP/1 intercepted"
			}
			if second {
				// net/http clears the write deadline after every answer: the next one is bounded all the same.
				name += ", the second answer on the connection"
			}
			t.Run(name, func(t *testing.T) {
				h, endless := newStall(t)
				const apps = 5
				for range apps {
					c := h.neverReading(intercepted, second)
					defer c.Close()
				}
				waitUntil(t, "the upstream's streams reset", func() bool { return endless.resets.Load() == apps })
				kind := ConnPlain
				if intercepted {
					kind = ConnIntercepted
				}
				waitUntil(t, "the apps' connections closed", func() bool { return h.metrics.get("connections "+string(kind)) == 0 })
			})
		}
	}
	t.Run("an HTTP/2 stream that waits for its upstream", func(t *testing.T) {
		h := newHarness(t, harnessOptions{yaml: stallRoutes, clientIdleTimeout: idle})
		h.route("secure.test:443", newUpstream(t, h.upCert, false, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "first\n")
			http.NewResponseController(w).Flush()
			time.Sleep(4 * idle) // the upstream's own pace: nothing to send for longer than the idle timeout
			_, _ = io.WriteString(w, "second\n")
		}))
		c := h.client(h.caPool)
		c.Transport.(*http.Transport).ForceAttemptHTTP2 = true
		resp, err := c.Get("https://secure.test/events")
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, 2, resp.ProtoMajor)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, "first\nsecond\n", string(body))
	})
}

// neverReading sends one request for an endless answer, plain or on an intercepted HTTP/1 connection, and
// never reads: its receive buffer is made small, so the proxy's writes soon block. With second, the
// connection first carries a request the proxy refuses itself (TRACE to a route's host), its answer read
// whole.
func (h *harness) neverReading(intercepted, second bool) net.Conn {
	h.t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	raw, err := d.Dial("tcp", h.proxyURL.Host)
	require.NoError(h.t, err)
	var c net.Conn = raw
	request := "GET http://supplier.test/ HTTP/1.1\r\nHost: supplier.test\r\n\r\n"
	if intercepted {
		_, err = io.WriteString(raw, "CONNECT supplier.test:443 HTTP/1.1\r\nHost: supplier.test:443\r\n\r\n")
		require.NoError(h.t, err)
		resp, err := http.ReadResponse(bufio.NewReader(raw), &http.Request{Method: http.MethodConnect})
		require.NoError(h.t, err)
		require.Equal(h.t, http.StatusOK, resp.StatusCode)
		tc := tls.Client(raw, &tls.Config{ServerName: "supplier.test", RootCAs: h.caPool, NextProtos: []string{"http/1.1"}})
		require.NoError(h.t, tc.Handshake())
		c, request = tc, strings.Replace(request, "http://supplier.test/", "/", 1)
	}
	if second {
		_, err = io.WriteString(c, strings.Replace(request, "GET", "TRACE", 1))
		require.NoError(h.t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodTrace})
		require.NoError(h.t, err)
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(h.t, err)
		require.Equal(h.t, http.StatusMethodNotAllowed, resp.StatusCode)
	}
	_, err = io.WriteString(c, request)
	require.NoError(h.t, err)
	return c
}
