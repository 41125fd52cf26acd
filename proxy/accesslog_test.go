package proxy

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/logging"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

// The access line is written whole, in field order, and costs no allocation beyond its fields': they go
// through a pooled slice as one inline group.
func TestAccessLineFieldsAndAllocs(t *testing.T) {
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

	s.log = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	assert.Zero(t, testkit.AllocsPerRun(t, 100, func() { s.logRequest(x, time.Millisecond) }))
	// log/slog's JSON handler formats a float through encoding/json, which boxes it: duration_ms's one.
	s.log = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	assert.Equal(t, 1.0, testkit.AllocsPerRun(t, 100, func() { s.logRequest(x, time.Millisecond) }))
}

// BenchmarkAccessLine is the access line of a matched request with a cached token, through the logger as
// deployed (logfmt into the buffered writer, a logging.Line), and through slog's TextHandler into the same
// writer.
//
//	go test ./proxy -run '^$' -bench AccessLine -benchmem
func BenchmarkAccessLine(b *testing.B) {
	log, closeLog, err := logging.New(io.Discard, "info", "text", true)
	if err != nil {
		b.Fatal(err)
	}
	defer closeLog()
	w := logging.NewWriter(io.Discard, logging.FlushInterval)
	defer w.Close()
	x := &exchange{route: &config.Route{Name: "orders"}, method: "GET", host: "api.example:8080", path: "/orders/1",
		status: 200, tokenVia: "hit", fingerprint: "3b0e893f"}
	x.received.Store(1024)
	x.tokenLeft.Store(true)
	for _, l := range []struct {
		name string
		log  *slog.Logger
	}{{"line", log}, {"slog", slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))}} {
		b.Run(l.name, func(b *testing.B) {
			s := &Server{log: l.log}
			b.ReportAllocs()
			for range b.N {
				s.logRequest(x, 1234567*time.Nanosecond)
			}
		})
	}
}

// accessLines writes x's access line with the logger internal/logging builds for logfmt (a logging.Line)
// and with slog's own TextHandler, at the same time and level.
func accessLines(t testing.TB, now time.Time, level slog.Level, x *exchange, took time.Duration) (line, slogs string) {
	var fast, slow bytes.Buffer
	log, closeLog, err := logging.New(&fast, "debug", "text", true)
	require.NoError(t, err)
	_, ok := log.Handler().(lineWriter)
	require.True(t, ok, "the logfmt logger takes whole lines")
	(&Server{log: log}).writeAccessLine(now, level, x, took)
	closeLog()
	(&Server{log: slog.New(slog.NewTextHandler(&slow, &slog.HandlerOptions{Level: slog.LevelDebug}))}).writeAccessLine(now, level, x, took)
	return fast.String(), slow.String()
}

// The access line built as a logging.Line is byte for byte the one slog's TextHandler writes from the same
// fields: quoting, escapes, invalid UTF-8, times in other zones, floats, every optional field.
func TestAccessLineAsALineIsSlogs(t *testing.T) {
	at := time.Date(2026, 12, 6, 5, 40, 42, 521_987_654, time.UTC)
	cases := []struct {
		name  string
		x     *exchange
		now   time.Time
		level slog.Level
		took  time.Duration
	}{
		{"plain", &exchange{route: &config.Route{Name: "orders"}, method: "GET", host: "api.example:8443", path: "/o/1", status: 200},
			at, slog.LevelInfo, 1500 * time.Microsecond},
		{"no route, no path, a refusal", &exchange{method: "CONNECT", host: "[2001:db8::1]:443", status: 403, step: StepPolicy,
			err: errors.New(`the host "x" = refused`)}, at.In(time.FixedZone("", 5*3600+1800)), slog.LevelWarn, 0},
		{"quoting", &exchange{route: &config.Route{Name: "a b"}, method: "GET", host: "h", path: "/a b/c=d/\"q\"/back\\slash/tab\t/nl\n/é/\u00a0/\u200b/\xff/\x7f",
			status: 502, step: StepUpstream, err: errors.New("dial tcp: connect: connection refused\nnext line"), client: "ops=1"},
			at.Truncate(time.Second), slog.LevelError, 123456789 * time.Nanosecond},
		{"token, replay, client", &exchange{route: &config.Route{Name: "orders"}, method: "POST", host: "api.example", path: "/",
			status: 201, tokenVia: "fetch", fingerprint: "3b0e893f", replayed: true, client: "billing"},
			at.Add(999 * time.Microsecond), slog.LevelDebug, 2 * time.Hour},
		{"empty strings", &exchange{route: &config.Route{Name: ""}, method: "", host: "", status: 0, step: StepToken, err: errors.New("")},
			time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), slog.LevelInfo + 2, time.Nanosecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.x.sent.Store(12)
			c.x.received.Store(340)
			c.x.tokenLeft.Store(true)
			line, want := accessLines(t, c.now, c.level, c.x, c.took)
			assert.Equal(t, want, line)
		})
	}
}

// The logfmt access line costs no allocation per request.
func TestAccessLineAsALineAllocs(t *testing.T) {
	log, closeLog, err := logging.New(io.Discard, "info", "text", true)
	require.NoError(t, err)
	defer closeLog()
	s := &Server{log: log}
	x := &exchange{route: &config.Route{Name: "orders"}, method: "GET", host: "supplier.test", path: "/x", status: 200}
	assert.Zero(t, testkit.AllocsPerRun(t, 100, func() { s.logRequest(x, time.Millisecond) }))
}

// FuzzAccessLineAsALineIsSlogs holds the logging.Line and slog's TextHandler to the same bytes for any
// strings in the fields, times and durations.
func FuzzAccessLineAsALineIsSlogs(f *testing.F) {
	f.Add("orders", "GET", "api.example:443", "/a b", "", 200, int64(1500000), int64(1_800_000_000_123_456_789), 0)
	f.Add("", "", "", "\x00\"=\\", "boom\n", 502, int64(-1), int64(0), 3600)
	f.Add("ü", "M\u2028", "h", "/\ufffd", "\xf0\x28\x8c\x28", 99, int64(1<<62), int64(-1<<62), -45000)
	f.Fuzz(func(t *testing.T, route, method, host, path, errText string, status int, took, unixNano int64, zone int) {
		x := &exchange{route: &config.Route{Name: route}, method: method, host: host, path: path, status: status,
			tokenVia: "hit", fingerprint: "0badf00d"}
		if errText != "" {
			x.step, x.err = StepUpstream, errors.New(errText)
		}
		x.tokenLeft.Store(true)
		now := time.Unix(0, unixNano).In(time.FixedZone("", zone%(18*3600)))
		line, want := accessLines(t, now, slog.LevelError, x, time.Duration(took))
		if line != want {
			t.Fatalf("logging.Line wrote\n%q\nslog writes\n%q", line, want)
		}
	})
}
