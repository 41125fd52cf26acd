package tokensource

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Store keeps the tokens a Cache hands out, one per set of credentials (a Fetcher's key). The Cache is the
// policy (one fetch at a time, refresh-ahead, backoff, refusals) and does not know which Store it talks
// to; a Store only keeps. MemoryStore, the default, keeps tokens in this process.
type Store interface {
	// Slot returns where key's token is kept. The Cache asks once per set of credentials and keeps the
	// Slot, so a request's look-up costs no search.
	Slot(key string) Slot
	// Forget drops key's token: its credentials left the configuration.
	Forget(key string)
}

// Slot holds the token of one set of credentials.
type Slot interface {
	// Load returns the token kept, or nil.
	Load(ctx context.Context) *Token
	// Save keeps t in place of what the slot held.
	Save(ctx context.Context, t *Token)
	// Drop empties the slot if it still holds t (a token the supplier refused).
	Drop(ctx context.Context, t *Token)
	// Claim is asked before a fetch that would replace have (nil when there is none). A store shared by
	// replicas lets one fetch at a time: while another holds the claim, Claim waits, until ctx ends, for
	// the token it stores and returns that. Otherwise it returns nil and release, to call once the fetch
	// is over and its token saved. A store that cannot tell returns nil: fetching is never blocked.
	Claim(ctx context.Context, have *Token) (t *Token, release func())
	// HoldRefusals tells every user of the store that refusals fetch no new token before until: the
	// supplier refuses whatever the endpoint issues.
	HoldRefusals(ctx context.Context, until time.Time)
	// RefusalsHeld returns when refusals may fetch again, as any user of the store said; zero when they may.
	// A shared store vouches for what it returns: a value it cannot tell a user of the store wrote is zero,
	// and no hold ends later than RefusalBackoffMax after it began, nor after now.
	RefusalsHeld(ctx context.Context) time.Time
}

// MemoryStore keeps tokens in this process: each replica has its own.
type MemoryStore struct {
	slots sync.Map // key → *memorySlot
}

// NewMemoryStore returns an empty in-process store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

// Slot returns key's slot, made on first use.
func (m *MemoryStore) Slot(key string) Slot {
	if s, ok := m.slots.Load(key); ok {
		return s.(*memorySlot)
	}
	s, _ := m.slots.LoadOrStore(key, &memorySlot{})
	return s.(*memorySlot)
}

// Forget drops key's slot and its token.
func (m *MemoryStore) Forget(key string) { m.slots.Delete(key) }

// memorySlot is one token behind an atomic pointer: a look-up is a load, lock-free.
type memorySlot struct{ token atomic.Pointer[Token] }

func (s *memorySlot) Load(context.Context) *Token      { return s.token.Load() }
func (s *memorySlot) Save(_ context.Context, t *Token) { s.token.Store(t) }
func (s *memorySlot) Drop(_ context.Context, t *Token) { s.token.CompareAndSwap(t, nil) }

// Claim never waits: in one process the Cache already lets one caller fetch at a time.
func (s *memorySlot) Claim(context.Context, *Token) (*Token, func()) { return nil, func() {} }

// HoldRefusals and RefusalsHeld have nothing to share: the Cache holds its own refusals back.
func (s *memorySlot) HoldRefusals(context.Context, time.Time) {}
func (s *memorySlot) RefusalsHeld(context.Context) time.Time  { return time.Time{} }
