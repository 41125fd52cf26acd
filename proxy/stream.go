package proxy

import (
	"net/http"
	"sync"
	"time"
)

// streamWriter is the answer writer of one HTTP/2 stream of an intercepted connection. A write the app
// does not take within the idle timeout (it keeps a zero flow-control window) resets the stream, which
// closes the upstream answer behind it; a stream that only waits for its upstream is never cut. (On
// HTTP/1 the connection's write deadline does this: see trackedConn.progress.)
type streamWriter struct {
	http.ResponseWriter
	idle  time.Duration
	mu    sync.Mutex
	since time.Time   // when the write in progress began; zero while none is
	timer *time.Timer // looks at the write in progress; nil until the first write
	armed bool
	ended bool // the handler returned: the stream may no longer be touched
}

func newStreamWriter(w http.ResponseWriter, idle time.Duration) *streamWriter {
	return &streamWriter{ResponseWriter: w, idle: idle}
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.begin()
	defer w.finish()
	return w.ResponseWriter.Write(p)
}

// Flush waits for the app's window like Write does.
func (w *streamWriter) Flush() {
	w.begin()
	defer w.finish()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the stream's own writer.
func (w *streamWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *streamWriter) begin() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.since = time.Now()
	if w.armed {
		return
	}
	w.armed = true
	if w.timer == nil {
		w.timer = time.AfterFunc(w.idle, w.check)
	} else {
		w.timer.Reset(w.idle)
	}
}

func (w *streamWriter) finish() {
	w.mu.Lock()
	w.since = time.Time{}
	w.mu.Unlock()
}

// check runs when a write may have waited for the idle timeout: it resets the stream if one has, and
// otherwise looks again when the write in progress would reach it.
func (w *streamWriter) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended || w.since.IsZero() {
		w.armed = false
		return
	}
	if left := w.idle - time.Since(w.since); left > 0 {
		w.timer.Reset(left)
		return
	}
	w.armed = false
	// A deadline in the past resets the stream at once and wakes the blocked write with an error.
	_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Unix(1, 0))
}

// end is called when the handler returns.
func (w *streamWriter) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended = true
	if w.timer != nil {
		w.timer.Stop()
	}
}
