package tokensource

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// RefreshAt is the share of a token's lifetime after which a token in use is renewed in the background.
const RefreshAt = 0.8

// Cache hands out tokens, keeping one per distinct set of credentials (tokenUrl, clientId, grantType,
// scope, params, authStyle). Callers that find no valid token share one fetch; a token in use is renewed
// in the background before it expires; a failing endpoint is asked again only after a backoff.
type Cache struct {
	clock   Clock
	log     *slog.Logger
	entries sync.Map // Config.key() → *entry
	flights singleflight.Group
	// refreshes counts background renewals still running.
	refreshes sync.WaitGroup
}

type entry struct {
	token   atomic.Pointer[Token]
	backoff backoff
	// refreshing is set while a background renewal runs, so requests start at most one.
	refreshing atomic.Bool
}

// NewCache returns an empty cache; a nil clock is the system clock, a nil logger slog's default.
func NewCache(clock Clock, log *slog.Logger) *Cache {
	if clock == nil {
		clock = SystemClock{}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Cache{clock: clock, log: log}
}

// Token returns a valid token for f's credentials and whether it came from the cache without a fetch.
// While the endpoint is backing off and no valid token is left, it fails fast with the last error.
func (c *Cache) Token(ctx context.Context, f *Fetcher) (*Token, bool, error) {
	e := c.entry(f.key)
	now := c.clock.Now()
	if t := e.token.Load(); t != nil && t.validAt(now) {
		if t.refreshDue(now) {
			c.refreshAhead(e, f)
		}
		return t, true, nil
	}
	if err := e.backoff.wait(now); err != nil {
		return nil, false, err
	}
	ch := c.flights.DoChan(f.key, func() (any, error) {
		// A caller that arrives just after a fetch finished finds the new token here.
		if t := e.token.Load(); t != nil && t.validAt(c.clock.Now()) {
			return t, nil
		}
		// The fetch is shared, so one caller giving up must not fail the others.
		return c.fetch(context.WithoutCancel(ctx), e, f)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, false, res.Err
		}
		t, _ := res.Val.(*Token)
		return t, false, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// Fresh fetches a new token for every call (routes with cache: false), still backing off a failing endpoint.
func (c *Cache) Fresh(ctx context.Context, f *Fetcher) (*Token, error) {
	e := c.entry(f.key)
	if err := e.backoff.wait(c.clock.Now()); err != nil {
		return nil, err
	}
	t, err := f.Fetch(ctx)
	e.backoff.record(c.clock.Now(), err)
	return t, err
}

// RejectMinAge is how old a refused token must be before it is dropped: a supplier refusing a token that
// was just issued points at the configuration (scope, audience, header), which another fetch would not mend.
const RejectMinAge = 10 * time.Second

// Reject is called when the supplier refused t. It drops t if it is still the cached token for f's
// credentials, so the next call fetches, and reports whether a retry may get another token: true when t
// was dropped now or already replaced, false when t is younger than RejectMinAge. Callers that were all
// refused the same token share one new fetch.
func (c *Cache) Reject(f *Fetcher, t *Token) bool {
	e := c.entry(f.key)
	if cur := e.token.Load(); cur != t {
		return true // another request already dropped or replaced it
	}
	if c.clock.Now().Sub(t.Obtained) < RejectMinAge {
		return false
	}
	e.token.CompareAndSwap(t, nil)
	return true
}

func (c *Cache) fetch(ctx context.Context, e *entry, f *Fetcher) (*Token, error) {
	t, err := f.Fetch(ctx)
	e.backoff.record(c.clock.Now(), err)
	if err != nil {
		return nil, err
	}
	e.token.Store(t)
	return t, nil
}

// refreshAhead renews the token in the background; requests keep the current one meanwhile, and keep it
// while renewing fails (within the backoff) until it expires.
func (c *Cache) refreshAhead(e *entry, f *Fetcher) {
	if e.backoff.waiting(c.clock.Now()) || !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	c.refreshes.Add(1)
	go func() {
		defer c.refreshes.Done()
		defer e.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), RequestTimeout)
		defer cancel()
		_, err, _ := c.flights.Do(f.key, func() (any, error) { return c.fetch(ctx, e, f) })
		if err != nil {
			c.log.Warn("token refresh failed; the current token is used until it expires",
				"tokenUrl", DisplayURL(f.cfg.TokenURL), "error", err)
		}
	}()
}

func (c *Cache) entry(key string) *entry {
	if e, ok := c.entries.Load(key); ok {
		return e.(*entry)
	}
	e, _ := c.entries.LoadOrStore(key, &entry{})
	return e.(*entry)
}

// BackoffError is returned without asking the token endpoint while it is backing off.
type BackoffError struct {
	Until time.Time
	Err   error // the last failure
}

func (e *BackoffError) Error() string {
	return "tokensource: the token endpoint failed recently; not asking again until " +
		e.Until.UTC().Format(time.RFC3339) + ": " + e.Err.Error()
}

func (e *BackoffError) Unwrap() error { return e.Err }

// IsBackoff reports whether err was returned without asking the endpoint.
func IsBackoff(err error) bool {
	var b *BackoffError
	return errors.As(err, &b)
}
