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

// Via says how a caller got its token.
type Via string

const (
	// ViaHit: a valid cached token, no waiting.
	ViaHit Via = "hit"
	// ViaWait: the caller waited for a fetch another caller started.
	ViaWait Via = "wait"
	// ViaFetch: the caller's own fetch.
	ViaFetch Via = "fetch"
)

// Metrics receives what the cache does, labelled with the fetcher's route. The admin package's Prometheus
// adapter implements it.
type Metrics interface {
	// TokenLookup counts a caller served by the cache, with how it was served.
	TokenLookup(route string, via Via)
	// TokenFetched counts a token request: result is "ok" or the kind of failure (see Result).
	TokenFetched(route, result string, took time.Duration)
	// RefusalBackoff counts a route stopping to fetch on refusals: a token fetched after a refusal was
	// refused too.
	RefusalBackoff(route string)
}

// Result names the outcome of a fetch for metrics: "ok", or the Kind of an *Error, or "error".
func Result(err error) string {
	if err == nil {
		return "ok"
	}
	if e, ok := AsError(err); ok {
		if e.Kind == KindNetwork && e.Timeout {
			return "timeout"
		}
		return string(e.Kind)
	}
	return "error"
}

// CacheOptions are the parts of a Cache that tests and the proxy replace; zero values are defaults.
type CacheOptions struct {
	Clock   Clock        // nil: the system clock
	Logger  *slog.Logger // nil: slog's default
	Metrics Metrics      // nil: none recorded
	Store   Store        // nil: a MemoryStore of its own
}

// Cache hands out tokens, keeping one per distinct set of credentials (tokenUrl, clientId, grantType,
// scope, params, authStyle). Callers that find no valid token share one fetch; a token in use is renewed
// in the background before it expires; a failing endpoint is asked again only after a backoff.
// The tokens themselves are kept in a Store: the Cache is the policy, the Store only keeps.
type Cache struct {
	clock   Clock
	log     *slog.Logger
	metrics Metrics
	store   Store
	entries sync.Map // Config.key() → *entry
	flights singleflight.Group
	// refreshes counts background renewals still running.
	refreshes sync.WaitGroup
	// parked counts callers waiting on a shared fetch (see Waiting).
	parked atomic.Int64
	// inService holds the keys Retain kept; nil before the first Retain. Other credentials get entries
	// that are used once and never kept.
	inService atomic.Pointer[map[string]bool]
}

// Waiting is how many callers wait now for a fetch, the one that started it included: a caller that has
// joined another's fetch is visible here before the fetch ends, when TokenLookup cannot say so yet.
func (c *Cache) Waiting() int { return int(c.parked.Load()) }

type entry struct {
	slot    Slot // where the store keeps the token
	backoff backoff
	refusal refusals
	// refreshing is set while a background renewal runs, so requests start at most one.
	refreshing atomic.Bool
	// stop ends the entry's background renewal when its credentials leave the configuration.
	ctx  context.Context
	stop context.CancelFunc
}

// NewCache returns an empty cache.
func NewCache(o CacheOptions) *Cache {
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = noMetrics{}
	}
	if o.Store == nil {
		o.Store = NewMemoryStore()
	}
	return &Cache{clock: o.Clock, log: o.Logger, metrics: o.Metrics, store: o.Store}
}

// Token returns a valid token for f's credentials and how it was found. While the endpoint is backing off
// and no valid token is left, it fails fast with the last error.
func (c *Cache) Token(ctx context.Context, f *Fetcher) (*Token, Via, error) {
	e := c.entry(f.key)
	now := c.clock.Now()
	if t := e.slot.Load(ctx); t != nil && t.validAt(now) {
		if t.refreshDue(now) {
			c.refreshAhead(e, f, t)
		}
		c.metrics.TokenLookup(f.route, ViaHit)
		return t, ViaHit, nil
	}
	if err := e.backoff.wait(now); err != nil {
		return nil, "", err
	}
	// Only the caller whose function runs sets via; the others joined its flight and waited.
	via := ViaWait
	ch := c.flights.DoChan(f.key, func() (any, error) {
		// A caller that arrives just after a fetch finished finds the new token here, or the backoff that
		// fetch's failure started: one attempt per backoff window, however many callers raced here.
		now := c.clock.Now()
		seen := e.slot.Load(ctx)
		if seen != nil && seen.validAt(now) {
			via = ViaHit
			return seen, nil
		}
		if err := e.backoff.wait(now); err != nil {
			return nil, err
		}
		via = ViaFetch
		// The fetch is shared, so one caller giving up must not fail the others.
		return c.fetch(context.WithoutCancel(ctx), e, f, seen)
	})
	c.parked.Add(1)
	defer c.parked.Add(-1)
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, "", res.Err
		}
		c.metrics.TokenLookup(f.route, via)
		t, _ := res.Val.(*Token)
		return t, via, nil
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
}

// Fresh fetches a new token for every call (routes with cache: false), still backing off a failing endpoint.
func (c *Cache) Fresh(ctx context.Context, f *Fetcher) (*Token, error) {
	e := c.entry(f.key)
	if err := e.backoff.wait(c.clock.Now()); err != nil {
		return nil, err
	}
	t, err := c.timedFetch(ctx, f)
	c.record(ctx, e, err)
	if err == nil {
		c.metrics.TokenLookup(f.route, ViaFetch)
	}
	return t, err
}

// Reject is called when the supplier refused t, and reports whether a retry may get another token. A
// refused token is dropped, whatever its age, so the next call fetches; callers that were all refused the
// same token share that one fetch. But when a token fetched after a refusal is refused too, the supplier
// refuses whatever the endpoint issues (a wrong scope or audience): refusals then fetch nothing for a
// backoff of 1 s doubling to 1 min, after which one more fresh token is tried.
func (c *Cache) Reject(f *Fetcher, t *Token) bool {
	e := c.entry(f.key)
	ctx := context.Background()
	if cur := e.slot.Load(ctx); cur != t {
		return true // another request already dropped or replaced it
	}
	now := c.clock.Now()
	if now.Before(e.slot.RefusalsHeld(ctx)) {
		return false // another replica found the supplier refusing every token: the fleet waits
	}
	retry, started := e.refusal.refused(t, now)
	if started > 0 {
		e.slot.HoldRefusals(ctx, e.refusal.backingOff(now))
		c.metrics.RefusalBackoff(f.route)
		if started == 1 {
			c.log.Warn("the supplier refuses the tokens tokenproxy fetches; refusals fetch no new token for a while "+
				"(1s, doubling up to 1m): check scope, params (audience, resource), header and prefix",
				"route", f.route, "token_fp", t.Fingerprint())
		}
	}
	if retry {
		e.slot.Drop(ctx, t)
	}
	return retry
}

// State is what the cache knows of one set of credentials, for status pages and metrics.
type State struct {
	Token        *Token    // the cached token; nil when none
	LastError    error     // the last failure while the endpoint is backing off; nil otherwise
	BackoffUntil time.Time // zero when not backing off
	// RefusalsUntil is when a refusal may fetch a new token again; zero when refusals fetch.
	RefusalsUntil time.Time
}

// State returns the state of f's credentials.
func (c *Cache) State(f *Fetcher) State {
	v, ok := c.entries.Load(f.key)
	if !ok {
		return State{}
	}
	e := v.(*entry)
	now := c.clock.Now()
	st := State{Token: e.slot.Load(context.Background()), RefusalsUntil: e.refusal.backingOff(now)}
	st.BackoffUntil, st.LastError = e.backoff.state(now)
	return st
}

// FleetRefusalsHeld returns until when the users of a shared store hold f's refusals back (another replica
// found the supplier refusing every token); zero when they do not, or when the store is this process's.
// It asks the store (a call bounded by the store's own timeout): for status pages, not for every scrape.
func (c *Cache) FleetRefusalsHeld(ctx context.Context, f *Fetcher) time.Time {
	if v, ok := c.entries.Load(f.key); ok {
		return v.(*entry).slot.RefusalsHeld(ctx)
	}
	if _, local := c.store.(*MemoryStore); local {
		return time.Time{}
	}
	return c.store.Slot(f.key).RefusalsHeld(ctx) // a route this replica has not served yet
}

// Retain drops the tokens of every set of credentials that none of keep uses, and stops their background
// renewal. Tokens of the credentials in keep are untouched, so a reload that keeps them costs no fetch.
func (c *Cache) Retain(keep []*Fetcher) {
	used := make(map[string]bool, len(keep))
	for _, f := range keep {
		used[f.key] = true
	}
	c.inService.Store(&used)
	c.entries.Range(func(k, v any) bool {
		if !used[k.(string)] {
			c.entries.Delete(k)
			c.store.Forget(k.(string))
			v.(*entry).stop()
		}
		return true
	})
}

// Close stops every background renewal and waits for them to end.
func (c *Cache) Close() {
	c.entries.Range(func(_, v any) bool {
		v.(*entry).stop()
		return true
	})
	c.refreshes.Wait()
}

// fetch gets a token to replace have (nil, expired, or due for renewal).
func (c *Cache) fetch(ctx context.Context, e *entry, f *Fetcher, have *Token) (*Token, error) {
	// Another replica on a shared store may be fetching already, or have just fetched: its token is this
	// one's, for at most as long as a fetch may take; after that this replica fetches itself rather than
	// fail. (have is what the caller saw: a token that appeared since is the other replica's.)
	wait, cancel := context.WithTimeout(ctx, f.client.Timeout)
	theirs, release := e.slot.Claim(wait, have)
	cancel()
	if theirs != nil {
		e.refusal.takeFetchFlag() // a fetch a refusal asked for was done by another replica: the flag is spent
		return theirs, nil
	}
	defer release()
	t, err := c.timedFetch(ctx, f)
	c.record(ctx, e, err)
	if err != nil {
		return nil, err
	}
	t.afterRefusal = e.refusal.takeFetchFlag()
	e.slot.Save(ctx, t)
	return t, nil
}

// record notes a fetch's outcome in the backoff. A fetch that ended because its caller gave up (a deadline,
// an app gone, credentials removed) says nothing about the endpoint and is not a failure.
func (c *Cache) record(ctx context.Context, e *entry, err error) {
	if err != nil && ctx.Err() != nil {
		return
	}
	e.backoff.record(c.clock.Now(), err)
}

func (c *Cache) timedFetch(ctx context.Context, f *Fetcher) (*Token, error) {
	start := time.Now()
	t, err := f.Fetch(ctx)
	c.metrics.TokenFetched(f.route, Result(err), time.Since(start))
	return t, err
}

// refreshAhead renews the token in the background; requests keep the current one meanwhile, and keep it
// while renewing fails (within the backoff) until it expires.
func (c *Cache) refreshAhead(e *entry, f *Fetcher, due *Token) {
	if e.backoff.waiting(c.clock.Now()) || e.ctx.Err() != nil || !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	c.refreshes.Add(1)
	go func() {
		defer c.refreshes.Done()
		defer e.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(e.ctx, RequestTimeout)
		defer cancel()
		_, err, _ := c.flights.Do(f.key, func() (any, error) {
			// A request that found no valid token may have fetched a new one meanwhile.
			if cur := e.slot.Load(ctx); cur != nil && cur != due && !cur.refreshDue(c.clock.Now()) {
				return cur, nil
			}
			return c.fetch(ctx, e, f, due)
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			c.log.Warn("token refresh failed; the current token is used until it expires",
				"route", f.route, "tokenUrl", DisplayURL(f.cfg.TokenURL), "error", err)
		}
	}()
}

func (c *Cache) entry(key string) *entry {
	if e, ok := c.entries.Load(key); ok {
		return e.(*entry)
	}
	if in := c.inService.Load(); in != nil && !(*in)[key] {
		// Credentials a reload dropped, asked for by a request that started before it: serve it from an
		// entry of its own, stopped from the start so no refresh runs, and never kept.
		ctx, stop := context.WithCancel(context.Background())
		stop()
		return &entry{slot: new(memorySlot), ctx: ctx, stop: stop}
	}
	ctx, stop := context.WithCancel(context.Background())
	e, loaded := c.entries.LoadOrStore(key, &entry{slot: c.store.Slot(key), ctx: ctx, stop: stop})
	if loaded {
		stop()
	}
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

type noMetrics struct{}

func (noMetrics) TokenLookup(string, Via)                    {}
func (noMetrics) TokenFetched(string, string, time.Duration) {}
func (noMetrics) RefusalBackoff(string)                      {}
