// Package logging builds tokenproxy's logger: slog lines, text (tint on a terminal, logfmt elsewhere) or
// JSON, written through a buffer
// that a goroutine of its own empties, so that a request never waits for a write to stderr.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/lmittmann/tint"
)

// FlushInterval is how long a line waits in the buffer at most before it is written.
const FlushInterval = 100 * time.Millisecond

const (
	// flushAt wakes the writer goroutine early: a burst of lines is written in pieces this large.
	flushAt = 64 << 10
	// blockAt makes a logging call write the buffer itself: when the output cannot keep up, requests slow
	// down to its pace rather than lines being dropped or memory growing without bound.
	blockAt = 1 << 20
)

// New returns a logger at level ("debug", "info", "warn", "error") in format ("text" or "json") writing
// to out. With buffered set, lines go through a Writer; the returned close flushes it and must run before
// the process exits. Without, close does nothing.
func New(out io.Writer, level, format string, buffered bool) (log *slog.Logger, close func(), err error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	if format != "text" && format != "json" {
		return nil, nil, fmt.Errorf("-log-format %q: want text or json", format)
	}
	color := IsTerminal(out)
	close = func() {}
	var w *Writer
	if buffered {
		w = NewWriter(out, FlushInterval)
		out, close = w, w.Close
	}
	switch {
	case format == "json":
		return slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: lv})), close, nil
	case color:
		return slog.New(tint.NewTextHandler(out, &tint.Options{Level: lv, TimeFormat: time.DateTime})), close, nil
	}
	// Not a terminal (a container's log, a file): logfmt, which collectors parse. tint without colour
	// copies every string value rune by rune to strip escapes, about 15 allocations per access line.
	h := slog.NewTextHandler(out, &slog.HandlerOptions{Level: lv})
	if w != nil { // the Writer takes whole lines from anyone, so it can take Lines too
		return slog.New(textHandler{TextHandler: h, w: w}), close, nil
	}
	return slog.New(h), close, nil
}

// IsTerminal reports whether w is a terminal, where colours are welcome.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Writer collects what is written to it and writes it to its output from a goroutine of its own, at most
// a flush interval later. Each Write lands whole and in order. Nothing is dropped: Close writes what is
// left, and a Write after Close goes straight to the output.
type Writer struct {
	out      io.Writer
	interval time.Duration
	pending  chan struct{} // the first bytes since the last flush arrived
	full     chan struct{} // the buffer passed flushAt
	quit     chan struct{}
	done     chan struct{}
	once     sync.Once

	mu     sync.Mutex // guards buf, spare and closed
	buf    []byte
	spare  []byte // the buffer the last flush wrote, reused for the next
	closed bool

	writing sync.Mutex // one write to out at a time, in the order the bytes were taken
}

// NewWriter starts a Writer that writes to out at most interval after the first unwritten byte.
func NewWriter(out io.Writer, interval time.Duration) *Writer {
	w := &Writer{
		out: out, interval: interval,
		pending: make(chan struct{}, 1), full: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{}),
		buf: make([]byte, 0, flushAt), spare: make([]byte, 0, flushAt),
	}
	go w.run()
	return w
}

// Write keeps p for the writer goroutine; it never fails.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.writing.Lock()
		defer w.writing.Unlock()
		return w.out.Write(p)
	}
	first := len(w.buf) == 0
	w.buf = append(w.buf, p...)
	n := len(w.buf)
	w.mu.Unlock()
	switch {
	case n >= blockAt:
		w.flush()
	case n >= flushAt:
		signal(w.full)
	case first:
		signal(w.pending)
	}
	return len(p), nil
}

// Close writes what is left and sends later writes straight to the output.
func (w *Writer) Close() {
	w.once.Do(func() {
		close(w.quit)
		<-w.done
		// Holding writing, a Write that finds the writer closed waits until what is left has gone out
		// before its own line: the order holds across Close.
		w.writing.Lock()
		defer w.writing.Unlock()
		w.mu.Lock()
		rest := w.buf
		w.buf, w.closed = nil, true
		w.mu.Unlock()
		if len(rest) > 0 {
			_, _ = w.out.Write(rest)
		}
	})
}

func (w *Writer) run() {
	defer close(w.done)
	wait := time.NewTimer(w.interval)
	wait.Stop()
	for {
		select {
		case <-w.pending: // let lines gather for an interval, unless they fill the buffer first
			wait.Reset(w.interval)
			select {
			case <-wait.C:
			case <-w.full:
				wait.Stop()
			case <-w.quit:
				wait.Stop()
				w.flush()
				return
			}
		case <-w.full:
		case <-w.quit:
			w.flush()
			return
		}
		w.flush()
	}
}

// flush writes everything written so far; the buffer is swapped, so writers go on while it is written.
func (w *Writer) flush() {
	w.writing.Lock()
	defer w.writing.Unlock()
	w.mu.Lock()
	data := w.buf
	w.buf, w.spare = w.spare[:0], nil
	w.mu.Unlock()
	if len(data) > 0 {
		_, _ = w.out.Write(data) // nowhere to report a failure to write the log
	}
	w.mu.Lock()
	if cap(data) <= blockAt*2 { // a burst's oversized buffer is not kept
		w.spare = data[:0]
	} else {
		w.spare = make([]byte, 0, flushAt)
	}
	w.mu.Unlock()
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
