// Package redisstore is a tokensource.Store in Redis, so a fleet of sidecars shares one token per set of
// credentials. Keys are HMACs of the credentials under the secret key, values are tokens (and the fleet's
// refusal holds, hold.go) sealed with AES-256-GCM under it; every call is bounded by a short timeout, and
// whatever Redis does (down, slow, full, a record tampered with or from another version) the store answers
// from its own memory: Redis misbehaving never fails a request, and a record that does not open is a miss,
// never a token.
package redisstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// Defaults.
const (
	DefaultKeyPrefix = "tokenproxy:"
	// DefaultTimeout bounds each Redis call: a slow Redis adds at most this to a token look-up.
	DefaultTimeout = 50 * time.Millisecond
	// recheck is how long a replica trusts its own copy of a token past its refresh point before asking
	// Redis again whether another replica has renewed it.
	recheck = time.Second
)

// Options configure a Store.
type Options struct {
	// Client is the Redis connection (a single node, Sentinel or cluster: go-redis's UniversalClient).
	Client redis.UniversalClient
	// SecretKey is the 32-byte key of TOKENPROXY_SECRET_KEY; keys and values are derived from it.
	SecretKey []byte
	KeyPrefix string        // "": DefaultKeyPrefix
	Timeout   time.Duration // 0: DefaultTimeout
	Logger    *slog.Logger  // nil: slog's default
	Metrics   Metrics       // nil: none recorded
	Now       func() time.Time
}

// Metrics counts the store's calls to Redis: op is load, save, drop, lock, unlock, hold or held (the
// fleet's refusal backoff); result is ok, miss, held (a claim another replica has), error, timeout or
// unreadable (a record that does not open).
type Metrics interface {
	StoreOperation(op, result string)
}

type noMetrics struct{}

func (noMetrics) StoreOperation(string, string) {}

// Store keeps tokens in Redis and a copy of each in memory.
type Store struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	log     *slog.Logger
	metrics Metrics
	now     func() time.Time
	aead    cipher.AEAD
	keyMAC  []byte
	slots   sync.Map // credentials key → *slot
	healthy atomic.Bool
	where   string // the URL Open was given, without its password
	owned   bool   // Close closes the client: Open made it
}

var _ tokensource.Store = (*Store)(nil)

// New returns a store on o.Client. Without a 32-byte secret key there is no store: keys and tokens leave
// the process only sealed.
func New(o Options) (*Store, error) {
	if o.Client == nil {
		return nil, errors.New("redisstore: no Redis client")
	}
	if len(o.SecretKey) != 32 {
		return nil, errors.New("redisstore: a shared token store needs the 32-byte secret key (TOKENPROXY_SECRET_KEY or -secret-key-file)")
	}
	block, err := aes.NewCipher(derive(o.SecretKey, "tokenproxy store values"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	s := &Store{client: o.Client, prefix: o.KeyPrefix, timeout: o.Timeout, log: o.Logger, now: o.Now, aead: aead,
		keyMAC: derive(o.SecretKey, "tokenproxy store keys")}
	if s.prefix == "" {
		s.prefix = DefaultKeyPrefix
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.metrics = o.Metrics
	if s.metrics == nil {
		s.metrics = noMetrics{}
	}
	s.healthy.Store(true)
	return s, nil
}

// Slot returns where the token of the credentials key is kept.
func (s *Store) Slot(key string) tokensource.Slot {
	if v, ok := s.slots.Load(key); ok {
		return v.(*slot)
	}
	m := hmac.New(sha256.New, s.keyMAC)
	m.Write([]byte(key))
	v, _ := s.slots.LoadOrStore(key, &slot{s: s, redisKey: s.prefix + "token:" + hex.EncodeToString(m.Sum(nil))})
	return v.(*slot)
}

// Forget drops this replica's copy; the record in Redis expires with the token, and other replicas may
// still use it.
func (s *Store) Forget(key string) { s.slots.Delete(key) }

// Healthy reports whether the last Redis call succeeded.
func (s *Store) Healthy() bool { return s.healthy.Load() }

// slot is one set of credentials: the token this replica holds, and where the fleet's is in Redis.
type slot struct {
	s        *Store
	redisKey string
	held     atomic.Pointer[held]
	// holdUnreadable is set while the refusal hold in Redis does not open, so that it is logged once.
	holdUnreadable atomic.Bool
}

// held is a token with the sealed record it came from or went to, so a refusal deletes exactly it.
type held struct {
	token   *tokensource.Token // nil after a refusal dropped it
	sealed  string
	checked time.Time // when Redis was last asked about this token past its refresh point
	dropped string    // the sealed record a refusal dropped: never taken back from a read that raced the drop
}

// Load returns this replica's token while it is young; past its refresh point, or with none, it asks
// Redis, where another replica may have put a newer one, at most once a second per replica: the first
// request to find the copy due marks it checked and asks, the others go on with the copy meanwhile.
func (sl *slot) Load(ctx context.Context) *tokensource.Token {
	now := sl.s.now()
	h := sl.held.Load()
	if h != nil && h.token != nil {
		if now.Before(refreshPoint(h.token)) || now.Sub(h.checked) < recheck ||
			!sl.held.CompareAndSwap(h, &held{token: h.token, sealed: h.sealed, checked: now}) {
			return h.token
		}
	}
	if t := sl.newer(ctx, tokenOf(h)); t != nil {
		return t
	}
	return tokenOf(sl.held.Load())
}

func tokenOf(h *held) *tokensource.Token {
	if h == nil {
		return nil // token is nil too after a drop
	}
	return h.token
}

// Save keeps t here and in Redis, until it expires.
func (sl *slot) Save(ctx context.Context, t *tokensource.Token) {
	sealed, err := sl.s.seal(sl.redisKey, t)
	if err != nil {
		sl.held.Store(&held{token: t})
		return
	}
	sl.held.Store(&held{token: t, sealed: sealed, checked: sl.s.now()})
	ttl := t.Expiry.Sub(sl.s.now())
	if ttl <= 0 {
		return
	}
	// Part of a fetch, not of a look-up: it may take as long as the claim's read, so that the fleet gets
	// the token rather than fetch another.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimRead)
	defer cancel()
	sl.s.result("save", sl.s.client.Set(ctx, sl.redisKey, sealed, ttl).Err())
}

// deleteIfScript deletes a key only while it holds the value given: a refused record, and not a newer
// token another replica stored meanwhile; a claim, and only by the replica that holds it.
var deleteIfScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// Drop forgets t here and, for the whole fleet, in Redis.
func (sl *slot) Drop(ctx context.Context, t *tokensource.Token) {
	h := sl.held.Load()
	if h == nil || h.token != t {
		return
	}
	if !sl.held.CompareAndSwap(h, &held{dropped: h.sealed}) || h.sealed == "" {
		return
	}
	ctx, cancel := sl.s.call(ctx)
	defer cancel()
	sl.s.result("drop", deleteIfScript.Run(ctx, sl.s.client, []string{sl.redisKey}, h.sealed).Err())
}

const (
	// claimPoll is how often a replica waiting for another's fetch looks for its token.
	claimPoll = 20 * time.Millisecond
	// claimPatience is how many timed-out claims a replica tries before it fetches without one.
	claimPatience = 3
	// claimRead bounds the calls of a replica on its way to a fetch: its claim, its read before fetching,
	// storing the token it fetched.
	claimRead = 500 * time.Millisecond
)

// Claim lets one replica of the fleet fetch at a time: the claim is a key set with NX that expires on its
// own should its holder die, and is deleted only by its holder. The others poll for the token it stores.
func (sl *slot) Claim(ctx context.Context, have *tokensource.Token) (*tokensource.Token, func()) {
	none := func() {}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, none
	}
	owner, claimKey := hex.EncodeToString(id[:]), sl.redisKey+":fetching"
	patience := claimPatience
	ttl := time.Minute
	if deadline, ok := ctx.Deadline(); ok {
		ttl = time.Until(deadline) + time.Second // outlives the fetch it guards, not a stuck holder
	}
	for {
		// On the way to a fetch, not a look-up: the claim may wait longer for a busy Redis.
		call, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimRead)
		took, err := sl.s.client.SetNX(call, claimKey, owner, ttl).Result()
		cancel()
		if err != nil {
			_ = sl.s.result("lock", err)
			if isTimeout(err) || errors.Is(err, context.DeadlineExceeded) {
				if patience--; patience > 0 {
					continue // a busy Redis: ask again, a few times, before fetching alongside others
				}
			}
			return nil, none // no Redis, no claim: fetch
		}
		if took {
			sl.s.metrics.StoreOperation("lock", "ok")
			release := func() {
				call, cancel := sl.s.call(context.Background())
				defer cancel()
				_ = sl.s.result("unlock", deleteIfScript.Run(call, sl.s.client, []string{claimKey}, owner).Err())
			}
			// Stored by a replica that finished just before? About to fetch, this read may take longer
			// than a look-up: a token endpoint's answer costs more than a busy Redis.
			if t := sl.newerWithin(ctx, have, claimRead); t != nil {
				release()
				return t, none
			}
			return nil, release
		}
		sl.s.metrics.StoreOperation("lock", "held")
		if t := sl.newer(ctx, have); t != nil {
			return t, none
		}
		select {
		case <-ctx.Done():
			return nil, none // waited as long as a fetch takes: fetch rather than fail
		case <-time.After(claimPoll):
		}
	}
}

// newer returns a token in Redis other than have, keeping it as this replica's copy, or nil.
func (sl *slot) newer(ctx context.Context, have *tokensource.Token) *tokensource.Token {
	return sl.newerWithin(ctx, have, sl.s.timeout)
}

// newerWithin adopts the token in Redis when it is newer than what this replica holds and other than
// have; a record read just before a refusal dropped it, or an older one left behind, is not taken back.
func (sl *slot) newerWithin(ctx context.Context, have *tokensource.Token, timeout time.Duration) *tokensource.Token {
	t, sealed, ok := sl.s.getWithin(ctx, sl.redisKey, timeout)
	if !ok || (have != nil && t.Value == have.Value) {
		return nil
	}
	for {
		cur := sl.held.Load()
		switch {
		case cur != nil && sealed == cur.dropped:
			return nil // read before the refusal's delete reached Redis
		case cur != nil && cur.token != nil && (cur.sealed == sealed || !t.Obtained.After(cur.token.Obtained)):
			// This replica already holds it, or a newer one: that is the answer, unless it is have.
			if have != nil && cur.token.Value == have.Value {
				return nil
			}
			return cur.token
		}
		if sl.held.CompareAndSwap(cur, &held{token: t, sealed: sealed, checked: sl.s.now()}) {
			return t
		}
	}
}

// call bounds one Redis call by the store's timeout, whether or not its caller is still waiting: a call
// cut short by an app that left would count as a Redis failure.
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
}

// getWithin reads and opens key's record, waiting at most timeout. Anything but a valid, unexpired record
// of this version sealed under this key is a miss.
func (s *Store) getWithin(ctx context.Context, key string, timeout time.Duration) (*tokensource.Token, string, bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	sealed, err := s.client.Get(ctx, key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		s.healthyAgain()
		s.metrics.StoreOperation("load", "miss")
		return nil, "", false
	case err != nil:
		_ = s.result("load", err)
		return nil, "", false
	}
	s.healthyAgain()
	t, err := s.open(key, sealed)
	if err != nil {
		s.metrics.StoreOperation("load", "unreadable")
		s.log.Warn("a token record in the shared store does not open; treated as missing", "key", key, "error", err)
		return nil, "", false
	}
	if !s.now().Before(t.Expiry) {
		s.metrics.StoreOperation("load", "miss")
		return nil, "", false
	}
	s.metrics.StoreOperation("load", "ok")
	return t, sealed, true
}

// result counts a call, logs a change between a working and a failing Redis once, and returns err.
func (s *Store) result(op string, err error) error {
	switch {
	case err == nil:
		s.metrics.StoreOperation(op, "ok")
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		s.metrics.StoreOperation(op, "timeout")
	default:
		s.metrics.StoreOperation(op, "error")
	}
	ok := err == nil
	if s.healthy.Swap(ok) != ok {
		if ok {
			s.log.Info("the shared token store answers again")
		} else {
			s.log.Warn("the shared token store fails; tokens come from this replica's memory and the token endpoint",
				"op", op, "error", err)
		}
	}
	return err
}

// healthyAgain notes an answer from Redis that is not counted as ok (a miss).
func (s *Store) healthyAgain() {
	if !s.healthy.Swap(true) {
		s.log.Info("the shared token store answers again")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// refreshPoint is when the policy starts renewing t: until then this replica's copy needs no check.
func refreshPoint(t *tokensource.Token) time.Time {
	return t.Obtained.Add(time.Duration(float64(t.Lifetime()) * tokensource.RefreshAt))
}
