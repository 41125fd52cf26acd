package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/tokenproxy/tokenproxy/config"
)

// replayBody keeps a request body of at most a route's retryBodyLimit, so the request can be sent again
// byte-identical after a 401. A nil *replayBody keeps nothing.
type replayBody struct {
	mu       sync.Mutex
	src      io.ReadCloser // nil when the body was read ahead
	buf      []byte
	limit    int64
	complete bool // the whole body is in buf
	overflow bool // the body is larger than limit: not replayable
}

// noBody is what a request without a body keeps: nothing, and complete. Only read, so shared.
var noBody = &replayBody{complete: true}

// errBodyCut is the answer to an app whose request body ended before its Content-Length.
var errBodyCut = errors.New("the request body ended before its Content-Length")

// keepForReplay arranges for req's body to be kept when the route replays after a 401. A body of known
// size within the limit is read now, so a 401 that arrives before it was sent still finds it whole; a
// body of unknown size is kept as the upstream reads it, never waiting for bytes the app has not sent.
// Routes that never replay (retryOn401: false, cache: false) keep nothing and stream every body. When the
// app's body ends early, nothing is sent upstream.
//
// What all requests keep together is bounded by the server's replay budget: a body that does not fit in
// what is left of it streams and is not replayed, so no number of clients can make the proxy hold more.
func (s *Server) keepForReplay(req *http.Request, r *config.Route, x *exchange) (*replayBody, error) {
	if !r.RetryOn401 || !r.Cache {
		return nil, nil
	}
	if req.Body == nil || req.Body == http.NoBody {
		return noBody, nil
	}
	if req.ContentLength > r.RetryBodyLimit {
		return nil, nil
	}
	need := req.ContentLength
	if need < 0 {
		need = r.RetryBodyLimit // kept as it streams, up to the limit
	}
	if !s.reserveReplay(x, need) {
		s.log.Debug("request body not kept for a replay: the replay budget is spent", "route", r.Name, "budget", s.opts.ReplayBudget)
		return nil, nil
	}
	if req.ContentLength >= 0 {
		buf, err := io.ReadAll(io.LimitReader(req.Body, req.ContentLength))
		if err == nil && int64(len(buf)) < req.ContentLength {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBodyCut, err)
		}
		if b, ok := req.Body.(*clientBody); ok {
			b.markWhole() // the watchdog counts the round trip's wait from here
		}
		req.Body = io.NopCloser(bytes.NewReader(buf))
		return &replayBody{buf: buf, complete: true}, nil
	}
	b := &replayBody{src: req.Body, limit: r.RetryBodyLimit}
	req.Body = b
	return b, nil
}

func (b *replayBody) Read(p []byte) (int, error) {
	n, err := b.src.Read(p)
	b.mu.Lock()
	if !b.overflow {
		if int64(len(b.buf)+n) > b.limit {
			b.overflow, b.buf = true, nil
		} else {
			b.buf = append(b.buf, p[:n]...)
		}
	}
	if err == io.EOF {
		b.complete = true
	}
	b.mu.Unlock()
	return n, err
}

func (b *replayBody) Close() error { return b.src.Close() }

// replayable reports whether the whole body is kept.
func (b *replayBody) replayable() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.complete && !b.overflow
}

// replay returns the kept body for a second send.
func (b *replayBody) replay() io.ReadCloser {
	if len(b.buf) == 0 {
		return http.NoBody
	}
	return io.NopCloser(bytes.NewReader(b.buf))
}

// reserveReplay takes n bytes of the replay budget for x, until x ends (releaseReplay).
func (s *Server) reserveReplay(x *exchange, n int64) bool {
	if n == 0 {
		return true
	}
	if s.replayHeld.Add(n) > s.opts.ReplayBudget {
		s.replayHeld.Add(-n)
		return false
	}
	x.replayReserved = n
	return true
}

// releaseReplay gives x's part of the replay budget back.
func (s *Server) releaseReplay(x *exchange) {
	if x.replayReserved != 0 {
		s.replayHeld.Add(-x.replayReserved)
		x.replayReserved = 0
	}
}
