package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// usage is what the process holds: goroutines, open file descriptors and live heap.
type usage struct {
	goroutines, fds int
	heap            uint64
}

func measure(t *testing.T) usage {
	runtime.GC()
	runtime.GC() // the second empties sync.Pool's victim cache: pooled buffers are not kept load
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return usage{goroutines: runtime.NumGoroutine(), fds: len(fds), heap: ms.HeapInuse}
}

func (u usage) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, %.1f MiB heap", u.goroutines, u.fds, float64(u.heap)/(1<<20))
}

// backToBaseline waits until goroutines, file descriptors and the heap are back where they were (a few of
// the test's own goroutines may come and go; closed sockets are freed by finalizers, a GC or two later).
func backToBaseline(t *testing.T, base usage, what string) {
	t.Helper()
	var now usage
	ok := assert.Eventually(t, func() bool {
		now = measure(t)
		return now.goroutines <= base.goroutines+5 && now.fds <= base.fds+5 && now.heap < base.heap+4<<20
	}, 20*time.Second, 20*time.Millisecond, "after %s", what)
	if !ok {
		buf := make([]byte, 1<<20)
		t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
	}
	t.Logf("baseline %v; after %s %v", base, what, now)
}

func TestResourcesComeBackAfterLoad(t *testing.T) {
	// Quiet logs and upstreams that record nothing: the heap measured is the proxy's, not the test's notes.
	h := newHarness(t, harnessOptions{quiet: true})
	h.mapHost("supplier.test:80", bareUpstream(t, nil))
	h.mapHost("supplier.test:443", bareUpstream(t, h.upCert))
	h.mapHost("tunnel.test:80", bareUpstream(t, nil))
	// The token is cached and the upstream pools are warm before the baseline.
	resp, _ := h.get(h.caPool, "https://supplier.test/warm", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = h.get(nil, "http://supplier.test/warm", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	h.closeIdle()
	base := measure(t)

	t.Run("idle keep-alive connections", func(t *testing.T) {
		n := 1000
		conns := make([]net.Conn, 0, n)
		for range n {
			c, err := net.Dial("tcp", h.proxyURL.Host)
			require.NoError(t, err)
			conns = append(conns, c)
			_, err = io.WriteString(c, "GET http://supplier.test/idle HTTP/1.1\r\nHost: supplier.test\r\n\r\n")
			require.NoError(t, err)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
		}
		held := measure(t)
		assert.GreaterOrEqual(t, held.fds, base.fds+n, "the connections are really open")
		t.Logf("with %d idle keep-alive connections: %v", n, held)
		for _, c := range conns {
			require.NoError(t, c.Close())
		}
		backToBaseline(t, base, fmt.Sprintf("%d idle keep-alive connections", n))
	})

	t.Run("tunnels to a target that never speaks, whose app leaves", func(t *testing.T) {
		// The target reads until the proxy closes its side, and only then closes: a tunnel that outlived
		// its app would keep both sockets for ever.
		target, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		h.mapHost("silent.test:443", target.Addr().String())
		go func() {
			for {
				c, err := target.Accept()
				if err != nil {
					return
				}
				go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
			}
		}()
		const n = 200
		for range n {
			app, _ := h.rawConnect("silent.test:443")
			require.NoError(t, app.Close())
		}
		backToBaseline(t, base, fmt.Sprintf("%d tunnels to a silent target", n))
		require.NoError(t, target.Close())
	})

	for _, intercepted := range []bool{false, true} {
		name := "tunnels"
		if intercepted {
			name = "intercepted connections"
		}
		t.Run(name, func(t *testing.T) {
			n := 10000
			var done atomic.Int64
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < n; i += 4 {
						if err := h.oneTunnel(intercepted); err != nil {
							t.Errorf("connection %d: %v", i, err)
							return
						}
						done.Add(1)
					}
				}()
			}
			wg.Wait()
			require.EqualValues(t, n, done.Load())
			backToBaseline(t, base, fmt.Sprintf("%d %s opened and closed", n, name))
		})
	}
}

// oneTunnel opens a CONNECT, sends one request through it (plain bytes to tunnel.test, or TLS to the
// intercepted supplier.test), reads the answer and closes.
func (h *harness) oneTunnel(intercepted bool) error {
	target := "tunnel.test:80"
	if intercepted {
		target = "supplier.test:443"
	}
	c, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("CONNECT: %s", resp.Status)
	}
	var rw io.ReadWriter = c
	if intercepted {
		tc := tls.Client(c, &tls.Config{ServerName: "supplier.test", RootCAs: h.caPool})
		if err := tc.Handshake(); err != nil {
			return err
		}
		rw, br = tc, bufio.NewReader(tc)
	}
	if _, err := io.WriteString(rw, "GET /t HTTP/1.1\r\nHost: supplier.test\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// bareUpstream answers "ok" and keeps nothing; it returns its address.
func bareUpstream(t *testing.T, cert *tls.Certificate) string {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	if cert != nil {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
		s.EnableHTTP2 = true
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}
