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
	// RefusalBackoffMax is the longest refusal backoff; a hold read from a shared store ends no later than
	// this after it began, nor after the moment it is read.
	RefusalBackoffMax = BackoffMax
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

// refusals remembers a supplier refusing the tokens of one set of credentials.
type refusals struct {
	mu sync.Mutex
	// streak counts refusals in a row of tokens fetched after a refusal.
	streak int
	// until is when refusals may fetch again; heldBack the token refused when the wait began.
	until    time.Time
	heldBack *Token
	// next marks the next token stored as fetched after a refusal.
	next bool
}

// refused decides what a refusal of t at now does: retry (drop t and fetch another) or not. started is
// the streak when this refusal began a backoff, 0 when it did not.
func (r *refusals) refused(t *Token, now time.Time) (retry bool, started int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case now.Before(r.until):
		return false, 0 // backing off: the app gets the supplier's 401
	case !t.afterRefusal:
		r.streak, r.until, r.heldBack = 0, time.Time{}, nil // the first refusal of a token in good standing
	case t != r.heldBack:
		// A token fetched because of a refusal is refused too: another fetch would fare no better.
		r.streak++
		r.until, r.heldBack = now.Add(refusalDelay(r.streak)), t
		return false, r.streak
	}
	// A first refusal, or the backoff is over: one more fresh token.
	r.next = true
	return true, 0
}

// takeFetchFlag reports whether a token about to be stored was fetched after a refusal.
func (r *refusals) takeFetchFlag() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.next
	r.next = false
	return next
}

// backingOff returns when refusals may fetch again, or zero when they may now.
func (r *refusals) backingOff(now time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Before(r.until) {
		return r.until
	}
	return time.Time{}
}

// refusalDelay is 1 s for the first refusal backoff, doubling up to 1 min.
func refusalDelay(streak int) time.Duration {
	if streak > 7 {
		return RefusalBackoffMax
	}
	return min(BackoffMin<<(streak-1), RefusalBackoffMax)
}
