package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// answerThenEOF reads one answer from c and then the connection's end: the proxy must close it. Both
// within the test's own bound.
func answerThenEOF(t *testing.T, c net.Conn, br *bufio.Reader) *http.Response {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_, err = br.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the proxy closed the connection")
	return resp
}

// A request body that makes no progress for the body timeout ends its request with 408 and its
// connection; the upstream gets nothing (a route that keeps bodies for replay reads them first) or a cut
// request. A body that keeps moving, however slowly, is never cut.
func TestAStalledRequestBodyEndsTheRequest(t *testing.T) {
	const bodyTimeout = 300 * time.Millisecond
	// Three upstreams: the route's plain one, its TLS one, and a host of no route.
	newSlow := func(t *testing.T) (*harness, *upstream, *upstream, *upstream) {
		h := newHarness(t, harnessOptions{requestBodyTimeout: bodyTimeout})
		routed, secure, other := newUpstream(t, nil, false, nil), newUpstream(t, h.upCert, false, nil), newUpstream(t, nil, false, nil)
		h.route("supplier.test:80", routed)
		h.route("supplier.test:443", secure)
		h.route("other.test:80", other)
		return h, routed, secure, other
	}
	t.Run("plain, a route that keeps its body", func(t *testing.T) {
		h, routed, _, _ := newSlow(t)
		c, err := net.Dial("tcp", h.proxyURL.Host)
		require.NoError(t, err)
		defer c.Close()
		_, err = io.WriteString(c, "POST http://supplier.test/ HTTP/1.1\r\nHost: supplier.test\r\nContent-Length: 100\r\n\r\nabc")
		require.NoError(t, err)
		resp := answerThenEOF(t, c, bufio.NewReader(c))
		assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
		assert.Equal(t, StepPolicy, resp.Header.Get("X-Tokenproxy-Error"))
		assert.Empty(t, routed.requests(), "nothing went upstream")
		assert.Equal(t, 1.0, h.metrics.get("errors orders policy"))
	})
	t.Run("plain, streamed to a host of no route", func(t *testing.T) {
		h, _, _, other := newSlow(t)
		c, err := net.Dial("tcp", h.proxyURL.Host)
		require.NoError(t, err)
		defer c.Close()
		_, err = io.WriteString(c, "POST http://other.test/ HTTP/1.1\r\nHost: other.test\r\nContent-Length: 100\r\n\r\nabc")
		require.NoError(t, err)
		resp := answerThenEOF(t, c, bufio.NewReader(c))
		assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
		waitUntil(t, "the upstream saw the request", func() bool { return len(other.requests()) == 1 })
		assert.Equal(t, int64(3), other.last(t).BodyLen, "the upstream got the 3 bytes and then the end of its connection")
	})
	t.Run("intercepted HTTP/1", func(t *testing.T) {
		h, _, secure, _ := newSlow(t)
		tc, br := h.connectTLS("supplier.test:443")
		defer tc.Close()
		_, err := io.WriteString(tc, "POST /upload HTTP/1.1\r\nHost: supplier.test\r\nContent-Length: 100\r\n\r\nabc")
		require.NoError(t, err)
		resp := answerThenEOF(t, tc, br)
		assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
		assert.Empty(t, secure.requests(), "nothing went upstream")
	})
	t.Run("intercepted HTTP/2", func(t *testing.T) {
		h, _, secure, _ := newSlow(t)
		c := h.client(h.caPool)
		c.Transport.(*http.Transport).ForceAttemptHTTP2 = true
		c.Timeout = 10 * time.Second // the test's own bound
		body, feed := io.Pipe()
		defer feed.Close()
		go func() { _, _ = io.WriteString(feed, "abc") }() // and then nothing
		req, err := http.NewRequest(http.MethodPost, "https://supplier.test/upload", body)
		require.NoError(t, err)
		req.ContentLength = 100
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 2, resp.ProtoMajor)
		assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
		assert.Empty(t, secure.requests(), "nothing went upstream")
	})
	t.Run("a slow body that keeps moving", func(t *testing.T) {
		// A body timeout of its own, five times the app's pace, so a busy machine's late wake-ups cannot
		// make the app look stalled.
		const moving = time.Second
		h := newHarness(t, harnessOptions{requestBodyTimeout: moving})
		routed := newUpstream(t, nil, false, nil)
		h.route("supplier.test:80", routed)
		body, feed := io.Pipe()
		go func() {
			for range 7 {
				_, _ = io.WriteString(feed, "piece")
				time.Sleep(moving / 5) // the app's pace: 1.4 body timeouts in all, never one without a byte
			}
			feed.Close()
		}()
		req, err := http.NewRequest(http.MethodPost, "http://supplier.test/upload", body)
		require.NoError(t, err)
		req.ContentLength = 35
		resp, err := h.client(nil).Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, sha([]byte(strings.Repeat("piece", 7))), routed.last(t).BodySHA)
	})
}

// A body read to its end leaves no deadline behind, though Go's transport reads once more after it: net/http
// reads on after the body to notice the app leaving, and a deadline there would cancel the request while
// the upstream takes its time to answer.
func TestAWholeBodyLeavesNoDeadline(t *testing.T) {
	const bodyTimeout = 500 * time.Millisecond
	h := newHarness(t, harnessOptions{requestBodyTimeout: bodyTimeout})
	up := newUpstream(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * bodyTimeout) // the upstream's own pace, after the whole body arrived
		_, _ = io.WriteString(w, "late")
	})
	h.route("other.test:80", up)
	body, feed := io.Pipe()
	go func() {
		_, _ = io.WriteString(feed, "a whole ")
		time.Sleep(bodyTimeout / 5) // the app's pace (a fifth of the timeout, so a busy machine cannot make it a stall)
		_, _ = io.WriteString(feed, "body")
		feed.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, "http://other.test/", body)
	require.NoError(t, err)
	req.ContentLength = int64(len("a whole body"))
	resp, err := h.client(nil).Do(req)
	require.NoError(t, err)
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(answer))
	assert.Equal(t, "late", string(answer))
}

// A gateway refuses an app it does not know with 407 or 403 at once, without reading a byte of its body,
// and closes its connection: the body timeout (left at its 30 s here) is not what ends it.
func TestAGatewayRefusesUnknownAppsWithoutReadingTheirBodies(t *testing.T) {
	for _, tt := range []struct {
		name   string
		client string
		status int
	}{
		{"no credentials", "proxyAuth: {username: app, password: app-secret}", http.StatusProxyAuthRequired},
		{"another address", "cidrs: [10.0.0.0/8]", http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{yaml: defaultRoutes + "clients:\n  - name: app\n    " + tt.client + "\n"})
			up := newUpstream(t, nil, false, nil)
			h.route("supplier.test:80", up)
			base := measure(t)
			const apps = 50
			for range apps {
				c, err := net.Dial("tcp", h.proxyURL.Host)
				require.NoError(t, err)
				_, err = io.WriteString(c, "POST http://supplier.test/ HTTP/1.1\r\nHost: supplier.test\r\nContent-Length: 100\r\n\r\nabc")
				require.NoError(t, err)
				resp := answerThenEOF(t, c, bufio.NewReader(c))
				assert.Equal(t, tt.status, resp.StatusCode)
				assert.True(t, resp.Close, "Connection: close")
				require.NoError(t, c.Close())
			}
			assert.Empty(t, up.requests())
			backToBaseline(t, base, "50 refused apps")
		})
	}
}

// When round trips to upstreams stop completing (here a dialer that ignores every deadline), readiness
// fails; it comes back when they complete again. A slow answer within the timeouts is no stall.
func TestReadinessFailsWhenUpstreamRequestsStopCompleting(t *testing.T) {
	h := newHarness(t, harnessOptions{upstreamStallTimeout: 200 * time.Millisecond, responseHeaderTimeout: 5 * time.Second})
	h.mapHost("supplier.test:80", wedgedAddr)
	require.True(t, h.srv.Ready())
	answered := make(chan int, 1)
	go func() {
		resp, err := h.client(nil).Get("http://supplier.test/")
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	waitUntil(t, "readiness fails", func() bool { return !h.srv.Ready() })
	assert.Contains(t, h.logs.String(), "requests to upstreams stopped completing")
	close(h.wedged)
	assert.Equal(t, http.StatusBadGateway, <-answered)
	assert.True(t, h.srv.Ready(), "ready again once the round trip ended")
}

// panickingBody fails inside as net/http's HTTP/2 body does when a connection's window overflows.
type panickingBody struct{}

func (panickingBody) Read([]byte) (int, error) {
	panic("flow control update exceeds maximum window size")
}
func (panickingBody) Close() error { panic("flow control update exceeds maximum window size") }

// A panic out of the upstream transport's body fails that request alone: the transport is replaced, and
// the next request goes out on the new one.
func TestAPanicInTheUpstreamTransportReplacesIt(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, nil, false, nil)
	h.route("supplier.test:80", up)
	resp, _ := h.get(nil, "http://supplier.test/before", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	broken := h.srv.up.transport(forUnmatched) // x below has no route

	// A real round trip on the transport in service, whose answer's body then fails inside.
	x := &exchange{snap: h.srv.snap.Load(), start: time.Now(), method: http.MethodGet, host: "supplier.test"}
	req, err := http.NewRequest(http.MethodGet, up.URL+"/during", nil)
	require.NoError(t, err)
	upResp, err := h.srv.up.roundTrip(req, x)
	require.NoError(t, err)
	upResp.Body.Close()
	upResp.Body = panickingBody{}
	answer := h.srv.respond(x, upResp)
	var out bytes.Buffer
	_, err = io.Copy(&out, answer.Body)
	assert.ErrorContains(t, err, "the upstream transport failed")
	assert.ErrorContains(t, answer.Body.Close(), "the upstream transport failed")
	assert.NotSame(t, broken, h.srv.up.transport(forUnmatched), "replaced")
	assert.Contains(t, h.logs.String(), "the upstream transport failed inside net/http and was replaced")

	resp, _ = h.get(nil, "http://supplier.test/after", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Len(t, up.requests(), 3)
}

// The watchdog counts a wedged round trip whose request body was kept for a replay, over HTTP/1 and
// HTTP/2 alike (an HTTP/2 body tells its end only on a read past Content-Length, which keeping it never
// makes).
func TestReadinessSeesRequestsWithBodiesOnEveryProtocol(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1", true: "HTTP/2"}[h2], func(t *testing.T) {
			h := newHarness(t, harnessOptions{upstreamStallTimeout: 200 * time.Millisecond, responseHeaderTimeout: 5 * time.Second})
			h.mapHost("supplier.test:443", wedgedAddr)
			c := h.client(h.caPool)
			c.Transport.(*http.Transport).ForceAttemptHTTP2 = h2
			done := make(chan struct{})
			go func() {
				defer close(done)
				req, _ := http.NewRequest(http.MethodPost, "https://supplier.test/", strings.NewReader("abc"))
				if resp, err := c.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
			waitUntil(t, "readiness fails", func() bool { return !h.srv.Ready() })
			close(h.wedged)
			<-done
		})
	}
}
