package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// errBodyStalled is the read error of a request body that made no progress for the body timeout.
var errBodyStalled = errors.New("the request body made no progress")

// clientBody is an app's request body. It counts the bytes read and gives every read the body timeout to
// make progress, so an app that stops sending holds neither its request nor its connection for long.
type clientBody struct {
	io.ReadCloser
	// w is the request's own writer: its read deadline is the connection's (HTTP/1) or the stream's
	// (HTTP/2). Nil sets no deadline.
	w       http.ResponseWriter
	timeout time.Duration
	sent    *atomic.Int64 // the exchange's count of bytes read; nil until the exchange begins
	whole   atomic.Int64  // unix nanos when the body was read to its end; 0 before
	stalled atomic.Bool

	mu     sync.Mutex
	pushed time.Time // when the deadline was last moved
	// ended is set when the handler returned: the deadline is no longer this request's to move (and an
	// HTTP/2 stream's writer may no longer be touched).
	ended bool
	cut   bool // reads were cut off: nothing more is read
}

// watchBody puts r's body, if it has one, under the body timeout from now on. The caller ends it when its
// handler returns.
func (s *Server) watchBody(w http.ResponseWriter, r *http.Request) *clientBody {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	b := &clientBody{ReadCloser: r.Body, w: w, timeout: s.opts.RequestBodyTimeout}
	b.mu.Lock()
	b.pushLocked(time.Now())
	b.mu.Unlock()
	r.Body = b
	return b
}

// linkBody makes req's body the exchange's, counted in its bytes sent.
func (x *exchange) linkBody(req *http.Request) {
	if req.Body == nil || req.Body == http.NoBody {
		return
	}
	b, ok := req.Body.(*clientBody)
	if !ok { // served without watchBody (ServeHTTP called directly): counted, with no deadline
		b = &clientBody{ReadCloser: req.Body}
		req.Body = b
	}
	b.sent, x.body = &x.sent, b
}

func (b *clientBody) Read(p []byte) (int, error) {
	// Once the body is whole the deadline is never moved again, though readers do read on (Go's transport
	// looks for bytes beyond Content-Length): on HTTP/1 net/http then reads the connection to notice the
	// app leaving, and a deadline moved onto that read would cancel the request when it fires.
	if b.whole.Load() == 0 {
		b.mu.Lock()
		if now := time.Now(); now.Sub(b.pushed) >= b.pushEvery() {
			b.pushLocked(now)
		}
		b.mu.Unlock()
	}
	n, err := b.ReadCloser.Read(p)
	if b.sent != nil {
		b.sent.Add(int64(n))
	}
	switch {
	case err == io.EOF:
		b.whole.Store(time.Now().UnixNano()) // net/http clears an HTTP/1 deadline itself as it reads on
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		b.stalled.Store(true)
		err = fmt.Errorf("%w for %s: %w", errBodyStalled, b.timeout, err)
	}
	return n, err
}

// pushEvery is how stale the deadline may get before a read moves it: a second, or a quarter of a short
// timeout.
func (b *clientBody) pushEvery() time.Duration { return min(time.Second, b.timeout/4) }

func (b *clientBody) pushLocked(now time.Time) {
	b.pushed = now
	b.setLocked(now.Add(b.timeout))
}

func (b *clientBody) setLocked(deadline time.Time) {
	if b.w == nil || b.ended || b.cut || b.timeout <= 0 {
		return
	}
	_ = http.NewResponseController(b.w).SetReadDeadline(deadline)
}

// markWhole records that all of the body was read, for a reader that stops at Content-Length without
// asking for the end (an HTTP/2 body tells its end only on a further read).
func (b *clientBody) markWhole() { b.whole.CompareAndSwap(0, time.Now().UnixNano()) }

// wholeAt is when the body was read to its end; zero while it is not.
func (b *clientBody) wholeAt() time.Time {
	if ns := b.whole.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// cutOff stops all reading of a body that is not whole, so that nothing, net/http's discarding of an
// unread body included, waits for the app's bytes. It reports whether the body was cut.
func (b *clientBody) cutOff() bool {
	if b.whole.Load() != 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.w == nil || b.ended {
		return false
	}
	if !b.cut {
		_ = http.NewResponseController(b.w).SetReadDeadline(time.Unix(1, 0))
		b.cut = true
	}
	return true
}

// end is called when the handler returns. A deadline in place stays: it bounds net/http's reading of the
// rest of an unread HTTP/1 body, and the connection's next request sets its own.
func (b *clientBody) end() {
	b.mu.Lock()
	b.ended = true
	b.mu.Unlock()
}
