package proxy

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/tokenproxy/tokenproxy/internal/logging"
)

// done ends an exchange: one log line, the request metrics, and no longer in flight.
func (s *Server) done(x *exchange) {
	s.releaseReplay(x)
	took := time.Since(x.start)
	route := routeName(x.route)
	s.metrics.Request(route, x.status, took)
	if x.step != "" {
		s.metrics.Error(route, x.step)
	}
	s.logRequest(x, took)
	if c := x.conn(); c != nil {
		c.sending.CompareAndSwap(x, nil) // its connection's trace no longer tells it
	}
	if x.counted {
		s.inflight.Add(-1)
	}
}

// logRequest writes the one line every request gets: info when the upstream answered, error when
// tokenproxy could not get a token or reach the upstream, warn when it refused. Fields: route, method,
// host, path (never the query), status, duration_ms, bytes_sent (request body), bytes_received (response
// body), and, when a token was sent, how it was found (token) and its fingerprint (token_fp).
func (s *Server) logRequest(x *exchange, took time.Duration) {
	level := slog.LevelInfo
	switch {
	case errors.Is(x.err, context.Canceled):
		level = slog.LevelDebug // the app went away
	case x.step == StepToken || x.step == StepUpstream:
		level = slog.LevelError
	case x.step == StepPolicy:
		level = slog.LevelWarn
	}
	if !s.log.Enabled(context.Background(), level) {
		return
	}
	s.writeAccessLine(time.Now(), level, x, took)
}

// lineWriter is a log handler that writes whole logfmt lines built with logging.Line, as its own lines
// read (the one internal/logging's New makes for logfmt): the access line, written for every request,
// skips slog's generic attribute handling, a microsecond of each request's.
type lineWriter interface {
	WriteLine(*logging.Line)
}

// writeAccessLine writes the access line of x at level, timed now.
func (s *Server) writeAccessLine(now time.Time, level slog.Level, x *exchange, took time.Duration) {
	h := s.log.Handler()
	if lw, ok := h.(lineWriter); ok {
		l := logging.NewLine(now, level, "request")
		x.accessFields(l, took)
		lw.WriteLine(l)
		return
	}
	held := accessAttrs.Get().(*attrList)
	x.accessFields(held, took)
	// One attribute, a group without a key, which handlers write inline: a record keeps up to five
	// attributes without allocating, and the fields live in a pooled slice the handler is done with when
	// Handle returns. The record goes to the handler directly, with no source position: Logger.LogAttrs
	// would walk the stack for one on every line (runtime.Callers), which no handler of tokenproxy's prints.
	rec := slog.NewRecord(now, level, "request", 0)
	rec.AddAttrs(slog.Attr{Value: slog.GroupValue(*held...)})
	_ = h.Handle(context.Background(), rec)
	clear(*held) // the pool holds no strings of this request
	*held = (*held)[:0]
	accessAttrs.Put(held)
}

// fieldSink takes the access line's fields in order: a logging.Line, or an attrList for other handlers.
type fieldSink interface {
	String(key, value string)
	Int64(key string, value int64)
	Float64(key string, value float64)
	Bool(key string, value bool)
}

// accessFields gives the access line's fields to f.
func (x *exchange) accessFields(f fieldSink, took time.Duration) {
	f.String("route", routeName(x.route))
	f.String("method", x.method)
	f.String("host", x.host)
	if x.path != "" {
		f.String("path", x.path)
	}
	f.Int64("status", int64(x.status))
	f.Float64("duration_ms", millis(took))
	f.Int64("bytes_sent", x.sent.Load())
	f.Int64("bytes_received", x.received.Load())
	if x.tokenVia != "" && x.tokenLeft.Load() {
		f.String("token", x.tokenVia)
		f.String("token_fp", x.fingerprint)
	}
	if x.replayed {
		f.Bool("replayed", true)
	}
	if x.client != "" {
		f.String("client", x.client)
	}
	if x.step != "" {
		f.String("failed", x.step)
		if x.err != nil {
			f.String("error", x.err.Error())
		}
	}
}

// attrList collects the access line's fields as slog attributes.
type attrList []slog.Attr

func (a *attrList) String(key, value string)          { *a = append(*a, slog.String(key, value)) }
func (a *attrList) Int64(key string, value int64)     { *a = append(*a, slog.Int64(key, value)) }
func (a *attrList) Float64(key string, value float64) { *a = append(*a, slog.Float64(key, value)) }
func (a *attrList) Bool(key string, value bool)       { *a = append(*a, slog.Bool(key, value)) }

// accessAttrs holds the lists access lines are built in for handlers that take no logging.Line.
var accessAttrs = sync.Pool{New: func() any {
	attrs := make(attrList, 0, 16)
	return &attrs
}}
