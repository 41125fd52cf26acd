package tokensource

import (
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Backoff bounds: the first retry after a failure waits about BackoffMin, each further failure doubles it,
// up to BackoffMax. A Retry-After on 429 or 503 is honoured up to RetryAfterMax.
const (
	BackoffMin    = time.Second
	BackoffMax    = time.Minute
	RetryAfterMax = time.Hour
)

// backoff remembers a failing endpoint: how often it failed in a row, its last error, and when to ask again.
type backoff struct {
	mu       sync.Mutex
	failures int
	until    time.Time
	last     error
}

// wait returns a *BackoffError while asking again is not yet allowed.
func (b *backoff) wait(now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last != nil && now.Before(b.until) {
		return &BackoffError{Until: b.until, Err: b.last}
	}
	return nil
}

func (b *backoff) waiting(now time.Time) bool { return b.wait(now) != nil }

// record notes the outcome of a fetch: success clears the backoff, failure extends it.
func (b *backoff) record(now time.Time, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		b.failures, b.until, b.last = 0, time.Time{}, nil
		return
	}
	b.failures++
	b.last = err
	b.until = now.Add(delay(b.failures, err))
}

// delay is the exponential backoff with jitter (between half and all of the step), or the endpoint's
// Retry-After when it asked for longer.
func delay(failures int, err error) time.Duration {
	step := BackoffMax
	if failures < 7 {
		step = min(BackoffMin<<(failures-1), BackoffMax)
	}
	d := step/2 + rand.N(step/2+1)
	if e, ok := AsError(err); ok && e.RetryAfter > 0 &&
		(e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusServiceUnavailable) {
		d = max(d, min(e.RetryAfter, RetryAfterMax))
	}
	return d
}

// state returns when the backoff ends (zero once it has) and the last failure, which a success clears.
func (b *backoff) state(now time.Time) (until time.Time, last error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last != nil && now.Before(b.until) {
		until = b.until
	}
	return until, b.last
}
