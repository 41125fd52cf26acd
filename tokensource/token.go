package tokensource

import (
	"crypto/sha256"
	"encoding/hex"
	"sync/atomic"
	"time"
)

// Token is an access token and when it stops being usable.
type Token struct {
	Value    string
	Obtained time.Time
	Expiry   time.Time
	Scope    string // the scope the endpoint says it granted, if it says; *** when it shows a credential
	// LifetimeSource says where the lifetime came from (expires_in, expiresPath, jwt exp, default, ...).
	LifetimeSource string
	Status         int // HTTP status of the answer
	// afterRefusal is set when the token was fetched because the supplier refused the one before.
	afterRefusal bool
	// fingerprint and header are worked out once, not on every request that sends the token.
	fingerprint string
	header      atomic.Pointer[headerValue]
}

// headerValue is a token's header value under one prefix ("Bearer "), as http.Header holds it.
type headerValue struct {
	prefix string
	values []string
}

// newToken returns a token whose fingerprint is computed once, here.
func NewToken(value string, obtained, expiry time.Time) *Token {
	return &Token{Value: value, Obtained: obtained, Expiry: expiry, fingerprint: Fingerprint(value)}
}

// HeaderValue is prefix+Value as an http.Header value, built on the first call. The slice is shared by
// every request that sends the token: it may be assigned to a header, never written into.
func (t *Token) HeaderValue(prefix string) []string {
	if h := t.header.Load(); h != nil && h.prefix == prefix {
		return h.values
	}
	h := &headerValue{prefix: prefix, values: []string{prefix + t.Value}}
	t.header.Store(h)
	return h.values
}

// Lifetime is how long the token was issued for.
func (t *Token) Lifetime() time.Duration { return t.Expiry.Sub(t.Obtained) }

// Fingerprint is a short, non-reversible name for the token, safe to log.
func (t *Token) Fingerprint() string {
	if t.fingerprint != "" {
		return t.fingerprint
	}
	return Fingerprint(t.Value)
}

// Fingerprint returns the first 8 hex digits of the SHA-256 of s.
func Fingerprint(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

// skew is how long before expiry a cached token stops being handed out: the smaller of 30 s and 10 %
// of its lifetime, so a token never reaches the supplier in its last seconds.
func (t *Token) skew() time.Duration {
	return min(30*time.Second, t.Lifetime()/10)
}

// validAt reports whether the cached token may still be handed out at now.
func (t *Token) validAt(now time.Time) bool {
	return now.Before(t.Expiry.Add(-t.skew()))
}

// refreshDue reports whether the token has lived past RefreshAt of its lifetime.
func (t *Token) refreshDue(now time.Time) bool {
	return now.Sub(t.Obtained) >= time.Duration(float64(t.Lifetime())*RefreshAt)
}

// Clock tells the time; tests pass a clock they control.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
