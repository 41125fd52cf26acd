package proxy

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/logging"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

// The access line is written whole, in field order, and costs no allocation beyond its fields': they go
// through a pooled slice as one inline group.
func TestAccessLineFieldsAndAllocations(t *testing.T) {
	var out bytes.Buffer
	s := &Server{log: slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	x := &exchange{route: &config.Route{Name: "orders"}, method: "GET", host: "api.example", path: "/o/1",
		status: 200, tokenVia: "hit", fingerprint: "3b0e893f"}
	x.sent.Store(12)
	x.received.Store(340)
	x.tokenLeft.Store(true)
	s.logRequest(x, 1500*time.Microsecond)
	assert.Regexp(t, `^time=\S+ level=INFO msg=request route=orders method=GET host=api.example path=/o/1 status=200 `+
		`duration_ms=1.5 bytes_sent=12 bytes_received=340 token=hit token_fp=3b0e893f\n$`, out.String())

	if testkit.RaceEnabled {
		return
	}
	s.log = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	assert.Zero(t, testing.AllocsPerRun(100, func() { s.logRequest(x, time.Millisecond) }))
	// log/slog's JSON handler formats a float through encoding/json, which boxes it: duration_ms's one.
	s.log = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	assert.Equal(t, 1.0, testing.AllocsPerRun(100, func() { s.logRequest(x, time.Millisecond) }))
}

// BenchmarkAccessLine is the access line of a matched request with a cached token, through the logger as
// deployed (logfmt into the buffered writer).
//
//	go test ./proxy -run '^$' -bench AccessLine -benchmem
func BenchmarkAccessLine(b *testing.B) {
	log, closeLog, err := logging.New(io.Discard, "info", "text", true)
	if err != nil {
		b.Fatal(err)
	}
	defer closeLog()
	s := &Server{log: log}
	x := &exchange{route: &config.Route{Name: "orders"}, method: "GET", host: "api.example:8080", path: "/orders/1",
		status: 200, tokenVia: "hit", fingerprint: "3b0e893f"}
	x.received.Store(1024)
	x.tokenLeft.Store(true)
	b.ReportAllocs()
	for range b.N {
		s.logRequest(x, 1234567*time.Nanosecond)
	}
}
