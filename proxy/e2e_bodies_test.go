package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A route with cache: false never replays, so it never holds a body back: the upstream sees the request
// before the app has sent all of it.
func TestCacheFalseStreamsBodies(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	arrived := make(chan struct{})
	up := newUpstream(t, nil, true, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		b, _ := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "got %d", len(b))
	})
	h.route("fresh.test:80", up)
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, "http://fresh.test/upload", pr)
	require.NoError(t, err)
	req.ContentLength = 2000 // known and under retryBodyLimit: a route that replays would read it all first
	done := make(chan string, 1)
	go func() {
		resp, err := h.client(nil).Do(req)
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(b)
	}()
	_, err = pw.Write([]byte(strings.Repeat("a", 1000)))
	require.NoError(t, err)
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		_ = pw.CloseWithError(io.ErrUnexpectedEOF)
		t.Fatal("the upstream saw nothing before the whole body was sent: the body was held back")
	}
	_, err = pw.Write([]byte(strings.Repeat("b", 1000)))
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	assert.Equal(t, "got 2000", <-done)
}

// An app that leaves in the middle of its upload gets nothing sent upstream in its name.
func TestAnAppLeavingMidUploadSendsNothingUpstream(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			up := h.upstreamFor(sc.tls, false, nil)
			h.route(sc.hostport, up)
			resp, _ := h.get(h.caPool, sc.scheme+"://supplier.test/warm", nil) // the token is cached: no fetch to fail first
			require.Equal(t, http.StatusOK, resp.StatusCode)
			var conn net.Conn
			if sc.tls {
				tc, _ := h.connectTLS("supplier.test:443")
				conn = tc
			} else {
				c, err := net.Dial("tcp", h.proxyURL.Host)
				require.NoError(t, err)
				conn = c
			}
			target := "/upload"
			if !sc.tls {
				target = "http://supplier.test/upload"
			}
			// 100 kB announced, half sent: more than the transport buffers, so a truncated request would reach the wire.
			_, err := io.WriteString(conn, "POST "+target+" HTTP/1.1\r\nHost: supplier.test\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("x", 50000))
			require.NoError(t, err)
			// The proxy has the request; now the app goes away.
			waitUntil(t, "the request in flight", func() bool { return h.srv.inflight.Load() == 1 })
			require.NoError(t, conn.Close())
			waitUntil(t, "the request ended", func() bool { return h.srv.inflight.Load() == 0 })
			assert.Len(t, up.requests(), 1, "no truncated body went upstream with the token, only the warm-up")
		})
	}
}

// A client that asks for a large answer and stops reading cannot hold its connection, and the upstream one
// behind it, for ever: a write that makes no progress for the idle timeout ends both.
func TestAClientThatStopsReadingIsCutOff(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{clientIdleTimeout: 500 * time.Millisecond})
			writeFailed := make(chan error, 1)
			up := h.upstreamFor(sc.tls, false, func(w http.ResponseWriter, r *http.Request) {
				chunk := []byte(strings.Repeat("z", 64<<10))
				for i := 0; i < 1024; i++ { // 64 MiB
					if _, err := w.Write(chunk); err != nil {
						writeFailed <- err
						return
					}
				}
				writeFailed <- nil
			})
			h.route(sc.hostport, up)
			var conn net.Conn
			target := "http://supplier.test/big"
			if sc.tls {
				tc, _ := h.connectTLS("supplier.test:443")
				conn, target = tc, "/big"
			} else {
				c, err := net.Dial("tcp", h.proxyURL.Host)
				require.NoError(t, err)
				conn = c
			}
			defer conn.Close()
			_, err := io.WriteString(conn, "GET "+target+" HTTP/1.1\r\nHost: supplier.test\r\n\r\n")
			require.NoError(t, err)
			// ...and never read.
			select {
			case err := <-writeFailed:
				require.Error(t, err, "the whole answer cannot fit in socket buffers")
			case <-time.After(20 * time.Second):
				t.Fatal("a client that stopped reading held the upstream for 20 s")
			}
			waitUntil(t, "the request ended", func() bool { return h.srv.inflight.Load() == 0 })
		})
	}
}
