package tokensource

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Token is an access token and when it stops being usable.
type Token struct {
	Value    string
	Obtained time.Time
	Expiry   time.Time
	Scope    string // the scope the endpoint says it granted, if it says
	// LifetimeSource says where the lifetime came from (expires_in, expiresPath, jwt exp, default, ...).
	LifetimeSource string
	Status         int // HTTP status of the answer
	// afterRefusal is set when the token was fetched because the supplier refused the one before.
	afterRefusal bool
}

// Lifetime is how long the token was issued for.
func (t *Token) Lifetime() time.Duration { return t.Expiry.Sub(t.Obtained) }

// Fingerprint is a short, non-reversible name for the token, safe to log.
func (t *Token) Fingerprint() string { return Fingerprint(t.Value) }

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
