package proxy

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// done ends an exchange: one log line, the request metrics, and no longer in flight.
func (s *Server) done(x *exchange) {
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
	ctx := context.Background()
	if !s.log.Enabled(ctx, level) {
		return
	}
	held := accessAttrs.Get().(*[]slog.Attr)
	attrs := (*held)[:0]
	attrs = append(attrs,
		slog.String("route", routeName(x.route)),
		slog.String("method", x.method),
		slog.String("host", x.host),
	)
	if x.path != "" {
		attrs = append(attrs, slog.String("path", x.path))
	}
	attrs = append(attrs,
		slog.Int("status", x.status),
		slog.Float64("duration_ms", millis(took)),
		slog.Int64("bytes_sent", x.sent.Load()),
		slog.Int64("bytes_received", x.received.Load()),
	)
	if x.tokenVia != "" && x.tokenLeft.Load() {
		attrs = append(attrs, slog.String("token", x.tokenVia), slog.String("token_fp", x.fingerprint))
	}
	if x.replayed {
		attrs = append(attrs, slog.Bool("replayed", true))
	}
	if x.client != "" {
		attrs = append(attrs, slog.String("client", x.client))
	}
	if x.step != "" {
		attrs = append(attrs, slog.String("failed", x.step))
		if x.err != nil {
			attrs = append(attrs, slog.String("error", x.err.Error()))
		}
	}
	// One attribute, a group without a key, which handlers write inline: a record keeps up to five
	// attributes without allocating, and the fields live in a pooled slice the handler is done with when
	// Handle returns. The record goes to the handler directly, with no source position: Logger.LogAttrs
	// would walk the stack for one on every line (runtime.Callers), which no handler of tokenproxy's prints.
	rec := slog.NewRecord(time.Now(), level, "request", 0)
	rec.AddAttrs(slog.Attr{Value: slog.GroupValue(attrs...)})
	_ = s.log.Handler().Handle(ctx, rec)
	clear(attrs) // the pool holds no strings of this request
	*held = attrs
	accessAttrs.Put(held)
}

// accessAttrs holds the slices access lines are built in.
var accessAttrs = sync.Pool{New: func() any {
	attrs := make([]slog.Attr, 0, 16)
	return &attrs
}}
