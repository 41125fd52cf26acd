package logging

import (
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Line is one logfmt line built field by field exactly as log/slog's TextHandler writes its own (time,
// level, msg, then key=value, a value quoted where slog quotes it), for a line written so often that
// slog's generic attribute handling shows in profiles: the access line. The handler New builds for logfmt
// into its buffered Writer writes it whole (WriteLine); other handlers do not take Lines.
type Line struct {
	buf []byte
}

// lines holds Lines between uses: WriteLine gives them back.
var lines = sync.Pool{New: func() any { return &Line{buf: make([]byte, 0, 512)} }}

// maxKept is the largest buffer a Line keeps in the pool: a line with a long error does not pin memory.
const maxKept = 16 << 10

// NewLine starts a line with its time, level and message.
func NewLine(t time.Time, level slog.Level, msg string) *Line {
	l := lines.Get().(*Line)
	l.buf = append(l.buf[:0], "time="...)
	l.buf = appendRFC3339Millis(l.buf, t.Round(0)) // as slog: no monotonic reading
	l.buf = append(l.buf, " level="...)
	l.buf = appendString(l.buf, level.String())
	l.String(slog.MessageKey, msg)
	return l
}

// String adds key=value.
func (l *Line) String(key, value string) {
	l.key(key)
	l.buf = appendString(l.buf, value)
}

// Int64 adds key=value.
func (l *Line) Int64(key string, value int64) {
	l.key(key)
	l.buf = strconv.AppendInt(l.buf, value, 10)
}

// Float64 adds key=value, formatted as slog formats a float.
func (l *Line) Float64(key string, value float64) {
	l.key(key)
	l.buf = strconv.AppendFloat(l.buf, value, 'g', -1, 64)
}

// Bool adds key=value.
func (l *Line) Bool(key string, value bool) {
	l.key(key)
	l.buf = strconv.AppendBool(l.buf, value)
}

func (l *Line) key(key string) {
	l.buf = append(l.buf, ' ')
	l.buf = appendString(l.buf, key)
	l.buf = append(l.buf, '=')
}

// release gives the line back to the pool.
func (l *Line) release() {
	if cap(l.buf) <= maxKept {
		lines.Put(l)
	}
}

// textHandler is slog's TextHandler into the buffered Writer, which also writes Lines. A handler derived
// with WithAttrs or WithGroup is slog's own and takes no Lines (their lines carry more than a Line does).
type textHandler struct {
	*slog.TextHandler
	w *Writer
}

// WriteLine writes l as one line and takes it back: l must not be used after.
func (h textHandler) WriteLine(l *Line) {
	l.buf = append(l.buf, '\n')
	_, _ = h.w.Write(l.buf) // Writer keeps a copy, and never fails
	l.release()
}

// appendString appends s as slog's TextHandler does: quoted (strconv.Quote) when it is empty or holds a
// space, '=', '"', a control character, or a rune that is invalid, a space or not printable.
func appendString(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// needsQuoting is log/slog's rule (text_handler.go). For ASCII, slog quotes what JSON's safeSet leaves out
// (below 0x20, '"'; a backslash alone it does not quote) and space and '=': the table quoted.
func needsQuoting(s string) bool {
	if len(s) == 0 {
		return true
	}
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if quoted[b] {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// quoted are the ASCII bytes that make slog quote a value: control characters, space, '=' and '"'.
var quoted = func() (q [utf8.RuneSelf]bool) {
	for b := range q {
		q[b] = b < 0x20 || b == ' ' || b == '=' || b == '"'
	}
	return q
}()

// appendRFC3339Millis is log/slog's: RFC 3339 with exactly three digits of milliseconds, truncated.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	// Format according to time.RFC3339Nano since it is highly optimized, but truncate it to millisecond
	// resolution. That format trims trailing zeros, so a tenth of a millisecond is added to guarantee four
	// digits after the period, and the fourth is dropped.
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}
