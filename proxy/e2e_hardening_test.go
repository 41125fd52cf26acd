package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// appConn opens what an app would: a plain connection to the proxy, or an intercepted one to supplier.test
// (CONNECT, then TLS trusting the CA). target is what the request line names on it.
func (h *harness) appConn(t *testing.T, intercepted bool) (conn net.Conn, br *bufio.Reader, target string) {
	t.Helper()
	if intercepted {
		tc, br := h.connectTLS("supplier.test:443")
		return tc, br, ""
	}
	c, err := net.Dial("tcp", h.proxyURL.Host)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second))) // the test's own bound
	return c, bufio.NewReader(c), "http://supplier.test"
}

// closedByProxy waits for the proxy to close conn: a read ends in EOF or a reset, not the test's deadline.
func closedByProxy(t *testing.T, conn net.Conn, br *bufio.Reader, within time.Duration) {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(within))
	for {
		if _, err := br.ReadByte(); err != nil {
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "still open after %s", within)
			break
		}
	}
	assert.Less(t, time.Since(start), within)
}

func TestInterceptedAndPlainConnectionsBehaveLikeNetHTTP(t *testing.T) {
	for _, sc := range schemes {
		intercepted := sc.tls
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{readHeaderTimeout: 500 * time.Millisecond})
			released := make(chan struct{}, 1)
			up := h.upstreamFor(sc.tls, true, func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/stall": // never answers; ends when the proxy gives up on it
					<-r.Context().Done()
					released <- struct{}{}
					return
				case "/post":
					b, _ := io.ReadAll(r.Body)
					_, _ = io.WriteString(w, "got "+string(b))
					return
				}
				w.(http.Flusher).Flush() // no Content-Length: a chunked answer to HTTP/1.1
				_, _ = io.WriteString(w, "streamed")
			})
			h.route(sc.hostport, up)

			t.Run("a header over the limit is refused", func(t *testing.T) {
				conn, br, target := h.appConn(t, intercepted)
				big := strings.Repeat("a", 2<<20)
				go func() {
					_, _ = io.WriteString(conn, "GET "+target+"/ HTTP/1.1\r\nHost: supplier.test\r\nX-Big: "+big+"\r\n\r\n")
				}()
				resp, err := http.ReadResponse(br, nil)
				require.NoError(t, err)
				assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
			})

			t.Run("a header dribbled on a kept-alive connection is cut off", func(t *testing.T) {
				conn, br, target := h.appConn(t, intercepted)
				_, err := io.WriteString(conn, "GET "+target+"/first HTTP/1.1\r\nHost: supplier.test\r\n\r\n")
				require.NoError(t, err)
				resp, err := http.ReadResponse(br, nil)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				// The second request's header arrives a byte every 50 ms: each byte would push an idle
				// deadline forward; the header timeout of the request does not move.
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					line := "GET " + target + "/second HTTP/1.1\r\nHost: supplier.test\r\nX-Slow: " + strings.Repeat("s", 200)
					for i := 0; i < len(line); i++ {
						select {
						case <-stop:
							return
						case <-time.After(50 * time.Millisecond):
						}
						if _, err := conn.Write([]byte{line[i]}); err != nil {
							return
						}
					}
				}()
				closedByProxy(t, conn, br, 5*time.Second)
			})

			t.Run("Expect: 100-continue is answered", func(t *testing.T) {
				conn, br, target := h.appConn(t, intercepted)
				_, err := io.WriteString(conn, "POST "+target+"/post HTTP/1.1\r\nHost: supplier.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
				require.NoError(t, err)
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, err := br.ReadString('\n')
				require.NoError(t, err, "no 100 Continue: a client would wait its own timeout before sending the body")
				assert.Equal(t, "HTTP/1.1 100 Continue\r\n", line)
				_, err = br.ReadString('\n')
				require.NoError(t, err)
				_, err = io.WriteString(conn, "hello")
				require.NoError(t, err)
				resp, err := http.ReadResponse(br, nil)
				require.NoError(t, err)
				body, _ := io.ReadAll(resp.Body)
				assert.Equal(t, "got hello", string(body))
			})

			t.Run("Connection: close is honoured", func(t *testing.T) {
				conn, br, target := h.appConn(t, intercepted)
				_, err := io.WriteString(conn, "GET "+target+"/x HTTP/1.1\r\nHost: supplier.test\r\nConnection: close\r\n\r\n")
				require.NoError(t, err)
				resp, err := http.ReadResponse(br, nil)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				assert.True(t, resp.Close, "the answer says the connection closes")
				closedByProxy(t, conn, br, 5*time.Second)
			})

			t.Run("HTTP/1.0 gets an HTTP/1.0 answer", func(t *testing.T) {
				conn, br, target := h.appConn(t, intercepted)
				_, err := io.WriteString(conn, "GET "+target+"/old HTTP/1.0\r\nHost: supplier.test\r\n\r\n")
				require.NoError(t, err)
				resp, err := http.ReadResponse(br, nil)
				require.NoError(t, err)
				body, _ := io.ReadAll(resp.Body)
				assert.Equal(t, "HTTP/1.0", resp.Proto)
				assert.Empty(t, resp.TransferEncoding, "HTTP/1.0 has no chunked encoding")
				assert.Equal(t, "streamed", string(body))
			})

			t.Run("an app that leaves releases the upstream", func(t *testing.T) {
				conn, _, target := h.appConn(t, intercepted)
				_, err := io.WriteString(conn, "GET "+target+"/stall HTTP/1.1\r\nHost: supplier.test\r\n\r\n")
				require.NoError(t, err)
				// The upstream has this very request (earlier subtests' requests reached it too).
				waitUntil(t, "the upstream has the request", func() bool {
					for _, r := range up.requests() {
						if r.RequestURI == "/stall" {
							return true
						}
					}
					return false
				})
				require.NoError(t, conn.Close())
				select {
				case <-released:
				case <-time.After(10 * time.Second):
					t.Fatal("the stalled upstream request outlived its app")
				}
				waitUntil(t, "the request ended", func() bool { return h.srv.inflight.Load() == 0 })
			})
		})
	}
}

// Bytes an app sends in the same write as its CONNECT are not lost: the tunnelled request still arrives,
// the intercepted handshake still completes.
func TestBytesSentWithTheConnectAreKept(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.route("tunnel.test:80", newUpstream(t, nil, false, nil))
	h.route("supplier.test:443", newUpstream(t, h.upCert, false, nil))

	t.Run("tunnel", func(t *testing.T) {
		c, err := net.Dial("tcp", h.proxyURL.Host)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		_, err = io.WriteString(c, "CONNECT tunnel.test:80 HTTP/1.1\r\nHost: tunnel.test:80\r\n\r\n"+
			"GET /in-the-same-write HTTP/1.1\r\nHost: tunnel.test\r\n\r\n")
		require.NoError(t, err)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		resp, err = http.ReadResponse(br, nil)
		require.NoError(t, err, "the request sent with the CONNECT went through the tunnel")
		body, _ := io.ReadAll(resp.Body)
		assert.Equal(t, "hello from upstream", string(body))
	})

	t.Run("intercepted", func(t *testing.T) {
		raw, err := net.Dial("tcp", h.proxyURL.Host)
		require.NoError(t, err)
		defer raw.Close()
		require.NoError(t, raw.SetDeadline(time.Now().Add(10*time.Second)))
		// The ClientHello goes out in one write with the CONNECT, as clients that pipeline do.
		conn := &connectFirst{Conn: raw, connect: "CONNECT supplier.test:443 HTTP/1.1\r\nHost: supplier.test:443\r\n\r\n"}
		tc := tls.Client(conn, &tls.Config{ServerName: "supplier.test", RootCAs: h.caPool})
		require.NoError(t, tc.Handshake())
		_, err = io.WriteString(tc, "GET / HTTP/1.1\r\nHost: supplier.test\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		assert.Equal(t, "hello from upstream", string(body))
	})
}

// connectFirst sends a CONNECT in the same write as the first bytes written to it, and hides the proxy's
// answer to it from the reader.
type connectFirst struct {
	net.Conn
	connect string
	sent    bool
	br      *bufio.Reader
}

func (c *connectFirst) Write(p []byte) (int, error) {
	if !c.sent {
		c.sent = true
		if _, err := c.Conn.Write(append([]byte(c.connect), p...)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *connectFirst) Read(p []byte) (int, error) {
	if c.br == nil {
		c.br = bufio.NewReader(c.Conn)
		resp, err := http.ReadResponse(c.br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return 0, errors.New("CONNECT refused: " + resp.Status)
		}
	}
	return c.br.Read(p)
}

// A tunnel never outlives either side: the app leaving closes the target's side too, even when the target
// would never close it.
func TestATunnelClosesBothSidesWhenEitherEnds(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	target, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer target.Close()
	h.mapHost("silent.test:443", target.Addr().String())
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := target.Accept()
		if err == nil {
			accepted <- c // a target that never writes and never closes
		}
	}()

	app, _ := h.rawConnect("silent.test:443")
	targetSide := <-accepted
	defer targetSide.Close()
	waitUntil(t, "the tunnel counted", func() bool { return h.metrics.get("connections tunnel") == 1 })
	require.NoError(t, app.Close())

	require.NoError(t, targetSide.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = targetSide.Read(make([]byte, 1))
	var ne net.Error
	require.Error(t, err)
	assert.False(t, errors.As(err, &ne) && ne.Timeout(), "the proxy closed the target's side: %v", err)
	waitUntil(t, "the tunnel counted out", func() bool { return h.metrics.get("connections tunnel") == 0 })
}
