package tokensource

import (
	"context"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/singleflight"
)

// Cache hands out tokens, keeping one per distinct set of credentials until shortly before it expires.
// Callers that find no valid token share one fetch.
type Cache struct {
	clock   Clock
	entries sync.Map // Config.key() → *entry
	flights singleflight.Group
}

type entry struct {
	token atomic.Pointer[Token]
}

// NewCache returns an empty cache; a nil clock is the system clock.
func NewCache(clock Clock) *Cache {
	if clock == nil {
		clock = SystemClock{}
	}
	return &Cache{clock: clock}
}

// Token returns a valid token for f's credentials and whether it came from the cache without a fetch.
func (c *Cache) Token(ctx context.Context, f *Fetcher) (*Token, bool, error) {
	e := c.entry(f.key)
	if t := e.token.Load(); t != nil && t.validAt(c.clock.Now()) {
		return t, true, nil
	}
	ch := c.flights.DoChan(f.key, func() (any, error) {
		// A caller that arrives just after a fetch finished finds the new token here.
		if t := e.token.Load(); t != nil && t.validAt(c.clock.Now()) {
			return t, nil
		}
		// The fetch is shared, so one caller giving up must not fail the others.
		t, err := f.Fetch(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		e.token.Store(t)
		return t, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, false, res.Err
		}
		return res.Val.(*Token), false, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// Forget drops the cached token for f's credentials, so the next call fetches.
func (c *Cache) Forget(f *Fetcher) {
	c.entry(f.key).token.Store(nil)
}

func (c *Cache) entry(key string) *entry {
	if e, ok := c.entries.Load(key); ok {
		return e.(*entry)
	}
	e, _ := c.entries.LoadOrStore(key, &entry{})
	return e.(*entry)
}
