package redisstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// redisServer is testkit's redis-server with a client for the test.
type redisServer struct {
	*testkit.Redis
	t *testing.T
}

func startRedis(t *testing.T) *redisServer {
	return &redisServer{Redis: testkit.StartRedis(t), t: t}
}

func (r *redisServer) client() redis.UniversalClient {
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{r.Addr}, ContextTimeoutEnabled: true})
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

var secretA = bytes.Repeat([]byte{0xA5}, 32)

func newStore(t *testing.T, r *redisServer, secret []byte, logs io.Writer) *Store {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	s, err := New(Options{Client: r.client(), SecretKey: secret, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err)
	return s
}

// countingEndpoint is a token endpoint issuing tok-1, tok-2, … for an hour each, and a fetcher for it.
func countingEndpoint(t *testing.T) (*tokensource.Fetcher, *atomic.Int64) {
	var fetches atomic.Int64
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":3600}`, fetches.Add(1))
	}))
	t.Cleanup(endpoint.Close)
	f, err := tokensource.NewFetcher(tokensource.Config{TokenURL: endpoint.URL, ClientID: "c", ClientSecret: "s"}, tokensource.Options{})
	require.NoError(t, err)
	return f, &fetches
}

// replicas are n token caches, each on a store of its own on r, as n sidecars would be; metrics may be nil.
func replicas(t *testing.T, r *redisServer, n int, metrics Metrics) []*tokensource.Cache {
	caches := make([]*tokensource.Cache, n)
	for i := range caches {
		s, err := New(Options{Client: r.client(), SecretKey: secretA, Metrics: metrics, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(t, err)
		caches[i] = tokensource.NewCache(tokensource.CacheOptions{Store: s})
		t.Cleanup(caches[i].Close)
	}
	return caches
}

func token(value string, lifetime time.Duration) *tokensource.Token {
	now := time.Now()
	return tokensource.NewToken(value, now, now.Add(lifetime))
}

// What one replica saves, another on the same Redis with the same secret key loads, with the same refresh
// point; in Redis the key is an HMAC and the value is sealed: neither the credentials nor the token show.
func TestATokenSavedByOneReplicaIsLoadedByAnother(t *testing.T) {
	r := startRedis(t)
	one, two := newStore(t, r, secretA, nil), newStore(t, r, secretA, nil)
	ctx := context.Background()
	const credentials = "https://login.example/token|client-7|client-secret-value"
	saved := token("tok-shared-value", time.Hour)
	saved.Scope = "orders.read"
	one.Slot(credentials).Save(ctx, saved)

	got := two.Slot(credentials).Load(ctx)
	require.NotNil(t, got)
	assert.Equal(t, saved.Value, got.Value)
	assert.Equal(t, saved.Obtained.UnixMilli(), got.Obtained.UnixMilli())
	assert.Equal(t, saved.Expiry.UnixMilli(), got.Expiry.UnixMilli())
	assert.Equal(t, "orders.read", got.Scope)
	assert.Equal(t, tokensource.Fingerprint(saved.Value), got.Fingerprint())

	keys, err := r.client().Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 1)
	assert.Regexp(t, `^tokenproxy:token:[0-9a-f]{64}$`, keys[0])
	value, err := r.client().Get(ctx, keys[0]).Result()
	require.NoError(t, err)
	assert.NotContains(t, value, "tok-shared-value")
	assert.NotContains(t, value, "client-secret-value")
	ttl, err := r.client().PTTL(ctx, keys[0]).Result()
	require.NoError(t, err)
	assert.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 60, "the record expires with the token")
}

// A record altered in Redis, or sealed under another secret key, is a miss: never a token sent upstream.
func TestATamperedOrForeignRecordIsAMiss(t *testing.T) {
	r := startRedis(t)
	var logs bytes.Buffer
	one, other := newStore(t, r, secretA, &logs), newStore(t, r, bytes.Repeat([]byte{0x5A}, 32), nil)
	ctx := context.Background()
	one.Slot("creds").Save(ctx, token("tok-1", time.Hour))
	assert.Nil(t, other.Slot("creds").Load(ctx), "another secret key finds nothing")

	// The same record copied under the key the other store would use does not open either.
	key := one.Slot("creds").(*slot).redisKey
	otherKey := other.Slot("creds").(*slot).redisKey
	value, err := r.client().Get(ctx, key).Result()
	require.NoError(t, err)
	require.NoError(t, r.client().Set(ctx, otherKey, value, time.Hour).Err())
	assert.Nil(t, other.Slot("creds").Load(ctx))

	flipped := []byte(value)
	flipped[len(flipped)-1] ^= 1
	require.NoError(t, r.client().Set(ctx, key, string(flipped), time.Hour).Err())
	fresh := newStore(t, r, secretA, &logs)
	assert.Nil(t, fresh.Slot("creds").Load(ctx), "an altered record is a miss")
	require.NoError(t, r.client().Set(ctx, key, "\x07older format", time.Hour).Err())
	assert.Nil(t, fresh.Slot("creds").Load(ctx), "a record of another version is a miss")
	assert.Contains(t, logs.String(), "does not open")
	assert.NotContains(t, logs.String(), "tok-1")
}

// A refusal drops the token in Redis for every replica, but only the refused one: a newer token another
// replica stored meanwhile stays.
func TestDropRemovesOnlyTheRefusedToken(t *testing.T) {
	r := startRedis(t)
	one, two := newStore(t, r, secretA, nil), newStore(t, r, secretA, nil)
	ctx := context.Background()
	refused := token("tok-refused", time.Hour)
	one.Slot("creds").Save(ctx, refused)
	one.Slot("creds").Drop(ctx, refused)
	assert.Nil(t, one.Slot("creds").Load(ctx))
	assert.Nil(t, two.Slot("creds").Load(ctx), "dropped for the fleet")

	old := token("tok-old", time.Hour)
	one.Slot("creds").Save(ctx, old)
	two.Slot("creds").Save(ctx, token("tok-new", time.Hour))
	one.Slot("creds").Drop(ctx, old)
	got := newStore(t, r, secretA, nil).Slot("creds").Load(ctx)
	require.NotNil(t, got)
	assert.Equal(t, "tok-new", got.Value)
}

// Redis stopping never fails a look-up: the replica answers from its memory, logs the change once, and
// uses Redis again when it is back.
func TestRedisDownFallsBackToMemoryAndRecovers(t *testing.T) {
	r := startRedis(t)
	var logs bytes.Buffer
	s := newStore(t, r, secretA, &logs)
	ctx := context.Background()
	r.Stop()
	held := token("tok-local", time.Hour)
	s.Slot("creds").Save(ctx, held)
	assert.Same(t, held, s.Slot("creds").Load(ctx))
	assert.False(t, s.Healthy())
	assert.Nil(t, s.Slot("other").Load(ctx), "nothing anywhere: a miss, not an error")
	assert.Equal(t, 1, strings.Count(logs.String(), "the shared token store fails"), logs.String())

	r.Start()
	s.Slot("creds").Save(ctx, token("tok-after", time.Hour))
	assert.True(t, s.Healthy())
	assert.Contains(t, logs.String(), "the shared token store answers again")
	got := newStore(t, r, secretA, nil).Slot("creds").Load(ctx)
	require.NotNil(t, got)
	assert.Equal(t, "tok-after", got.Value)
}

func TestNewNeedsASecretKey(t *testing.T) {
	r := startRedis(t)
	_, err := New(Options{Client: r.client()})
	assert.ErrorContains(t, err, "needs the 32-byte secret key")
}

// Two token caches, as two replicas with their own memory, on one Redis: the token endpoint is asked once.
func TestTwoCachesOnOneRedisFetchOneToken(t *testing.T) {
	r := startRedis(t)
	f, fetches := countingEndpoint(t)
	caches := replicas(t, r, 2, nil)
	one, two := caches[0], caches[1]
	a, _, err := one.Token(context.Background(), f)
	require.NoError(t, err)
	b, via, err := two.Token(context.Background(), f)
	require.NoError(t, err)
	assert.Equal(t, a.Value, b.Value)
	assert.Equal(t, tokensource.ViaHit, via)
	assert.EqualValues(t, 1, fetches.Load())
}

// recordingMetrics counts store operations by "op result".
type recordingMetrics struct {
	mu     sync.Mutex
	counts map[string]int
}

func (m *recordingMetrics) StoreOperation(op, result string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts == nil {
		m.counts = map[string]int{}
	}
	m.counts[op+" "+result]++
}

func (m *recordingMetrics) get(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[key]
}

// Five replicas that all need a token at once ask the token endpoint once: one holds the claim and
// fetches, the others wait for the token it stores.
func TestOneReplicaFetchesForTheFleet(t *testing.T) {
	r := startRedis(t)
	var fetches atomic.Int64
	release := make(chan struct{})
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := fetches.Add(1)
		<-release
		_, _ = fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":3600}`, n)
	}))
	t.Cleanup(endpoint.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	f, err := tokensource.NewFetcher(tokensource.Config{TokenURL: endpoint.URL, ClientID: "c", ClientSecret: "s"}, tokensource.Options{})
	require.NoError(t, err)
	metrics := &recordingMetrics{}
	const n = 5
	got := make(chan string, n)
	for _, c := range replicas(t, r, n, metrics) {
		go func() {
			tok, _, err := c.Token(context.Background(), f)
			if err != nil {
				got <- err.Error()
				return
			}
			got <- tok.Value
		}()
	}
	require.Eventually(t, func() bool { return fetches.Load() == 1 && metrics.get("lock held") >= n-1 },
		10*time.Second, time.Millisecond, "one replica fetches while the others wait on its claim")
	close(release)
	for range n {
		assert.Equal(t, "tok-1", <-got)
	}
	assert.EqualValues(t, 1, fetches.Load())
	// A waiter may take the claim the fetcher gave back, find the token and give it back at once.
	assert.Equal(t, metrics.get("lock ok"), metrics.get("unlock ok"), "every claim taken is given back")
}

// A replica whose claim holder never stores a token waits no longer than its context (the fetch timeout),
// then fetches itself; a claim its holder gave back without a token is taken by the next.
func TestAClaimNeverBlocksForLongerThanAFetch(t *testing.T) {
	r := startRedis(t)
	one, two := newStore(t, r, secretA, nil), newStore(t, r, secretA, nil)
	theirs, release := one.Slot("creds").Claim(context.Background(), nil)
	require.Nil(t, theirs)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t2, release2 := two.Slot("creds").Claim(ctx, nil)
	assert.Nil(t, t2, "no token came: fetch")
	assert.Error(t, ctx.Err(), "it waited until its context ended")
	release2()

	release() // given back, no token stored
	t3, release3 := two.Slot("creds").Claim(context.Background(), nil)
	assert.Nil(t, t3)
	release3()
}

// When the token fetched after a refusal is refused too, the whole fleet stops fetching on refusals for the
// backoff, not only the replica that saw it: another replica refused the same token fetches nothing.
func TestAFleetHoldsRefusalsBackTogether(t *testing.T) {
	r := startRedis(t)
	f, fetches := countingEndpoint(t)
	caches := replicas(t, r, 2, nil)
	one, two := caches[0], caches[1]
	ctx := context.Background()

	t1, _, err := one.Token(ctx, f)
	require.NoError(t, err)
	require.True(t, one.Reject(f, t1), "a first refusal: one more fresh token")
	t2, _, err := one.Token(ctx, f)
	require.NoError(t, err)
	require.Equal(t, "tok-2", t2.Value)
	require.False(t, one.Reject(f, t2), "refused again: this replica backs off")

	seen, _, err := two.Token(ctx, f)
	require.NoError(t, err)
	require.Equal(t, "tok-2", seen.Value, "the other replica has the same token, from Redis")
	assert.Zero(t, two.State(f).RefusalsUntil, "its own state has seen no refusal")
	held := two.FleetRefusalsHeld(ctx, f)
	assert.True(t, held.After(time.Now()), "the other replica sees the fleet's hold before it saw a refusal itself")
	assert.WithinDuration(t, one.State(f).RefusalsUntil, held, time.Second)
	assert.False(t, two.Reject(f, seen), "and backs off with the fleet instead of fetching")
	assert.EqualValues(t, 2, fetches.Load())
}

// slowProxy forwards to Redis but holds every answer for delay, as an overloaded Redis would.
func slowProxy(t *testing.T, target string, delay time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range open {
			_ = c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			mu.Lock()
			open = append(open, c, up)
			mu.Unlock()
			go func() { _, _ = io.Copy(up, c) }()
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := up.Read(buf)
					if err != nil {
						return
					}
					time.Sleep(delay) // the fault under test: answers held back
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A Redis that answers slowly costs a look-up the store's timeout, not its slowness: the call is cut off,
// counted as a timeout, and the replica goes on from its memory and the token endpoint.
func TestASlowRedisCostsAtMostTheTimeout(t *testing.T) {
	r := startRedis(t)
	newStore(t, r, secretA, nil).Slot("creds").Save(context.Background(), token("tok-1", time.Hour))
	metrics := &recordingMetrics{}
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{slowProxy(t, r.Addr, 3*time.Second)}, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	s, err := New(Options{Client: c, SecretKey: secretA, Metrics: metrics, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	start := time.Now()
	assert.Nil(t, s.Slot("creds").Load(context.Background()), "no answer in time: a miss")
	assert.Less(t, time.Since(start), 2*time.Second, "cut off long before the 3 s answer")
	assert.Equal(t, 1, metrics.get("load timeout"))
	assert.False(t, s.Healthy())
}

// A full Redis (maxmemory reached, nothing to evict) refuses writes: the token stays usable from the
// replica's memory and the failure is counted, not passed on.
func TestAFullRedisRefusesWritesHarmlessly(t *testing.T) {
	r := startRedis(t)
	admin := r.client()
	ctx := context.Background()
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory", "1").Err())
	metrics := &recordingMetrics{}
	s, err := New(Options{Client: r.client(), SecretKey: secretA, Metrics: metrics, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	held := token("tok-1", time.Hour)
	s.Slot("creds").Save(ctx, held)
	assert.Equal(t, 1, metrics.get("save error"), "Redis answered OOM")
	assert.Same(t, held, s.Slot("creds").Load(ctx))
	assert.False(t, s.Healthy())
}

// Past its refresh point a replica asks Redis for a renewed token once a second, not once per request
// that arrives while it asks.
func TestPastTheRefreshPointRedisIsAskedOnceASecond(t *testing.T) {
	r := startRedis(t)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	metrics := &recordingMetrics{}
	s, err := New(Options{Client: r.client(), SecretKey: secretA, Metrics: metrics, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return time.Unix(0, now.Load()) }})
	require.NoError(t, err)
	ctx := context.Background()
	held := tokensource.NewToken("tok-1", time.Unix(0, now.Load()), time.Unix(0, now.Load()).Add(time.Minute))
	s.Slot("creds").Save(ctx, held)
	for range 50 {
		assert.Same(t, held, s.Slot("creds").Load(ctx), "young: no Redis")
	}
	assert.Zero(t, metrics.get("load ok")+metrics.get("load miss"))

	now.Add(int64(50 * time.Second)) // past 80 % of the minute: 50 requests at once
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			assert.Same(t, held, s.Slot("creds").Load(ctx))
		}()
	}
	close(start)
	wg.Wait()
	assert.Equal(t, 1, metrics.get("load ok")+metrics.get("load miss"), "one look in Redis for the second")
	now.Add(int64(time.Second))
	s.Slot("creds").Load(ctx)
	assert.Equal(t, 2, metrics.get("load ok")+metrics.get("load miss"), "and one more a second later")
}

// The store's address, in logs and /routes, shows no password, wherever the URL carries it.
func TestOpenShowsNoPassword(t *testing.T) {
	r := startRedis(t)
	for _, u := range []string{
		"redis://user:hunter22@" + r.Addr + "/0",
		"redis://" + r.Addr + "/0?master_name=tokens&password=hunter22",
	} {
		s, err := Open(u, "", Options{SecretKey: secretA, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(t, err)
		assert.NotContains(t, s.Where(), "hunter22")
		assert.Contains(t, s.Where(), "xxxxx")
		_ = s.Close()
	}
	err := CheckURL("redis://u:pa%zz@h:6379")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "pa%zz")
	err = CheckURL("redis://u:hunter22@h:6379/notadb")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter22")
}

// go-redis's URL parameters reach the client, for one server, Sentinel and a cluster alike; the password
// given beside the URL is used when the URL has none, and 2 idle connections are kept unless it says.
func TestURLParametersReachTheClient(t *testing.T) {
	c, err := newClient("redis://h:6379/2?pool_size=7&dial_timeout=3s&max_retries=5", "pw")
	require.NoError(t, err)
	defer c.Close()
	o := c.(*redis.Client).Options()
	assert.Equal(t, 7, o.PoolSize)
	assert.Equal(t, 3*time.Second, o.DialTimeout)
	assert.Equal(t, 5, o.MaxRetries)
	assert.Equal(t, 2, o.DB)
	assert.Equal(t, 2, o.MinIdleConns)
	assert.Equal(t, "pw", o.Password)
	assert.True(t, o.ContextTimeoutEnabled)

	c, err = newClient("redis://:from-url@h:6379/0?min_idle_conns=4", "pw")
	require.NoError(t, err)
	defer c.Close()
	o = c.(*redis.Client).Options()
	assert.Equal(t, 4, o.MinIdleConns)
	assert.Equal(t, "from-url", o.Password)

	p, err := parseURL("redis://s1:26379/0?master_name=tokens&addr=s2:26379&pool_size=9")
	require.NoError(t, err)
	require.NotNil(t, p.sentinel)
	assert.Equal(t, []string{"s1:26379", "s2:26379"}, p.sentinel.SentinelAddrs)
	assert.Equal(t, 9, p.sentinel.PoolSize)
	for _, param := range []string{"route_by_latency=true", "route_randomly=true", "replica_only=true"} {
		err := CheckURL("redis://:hunter22@s1:26379/0?master_name=tokens&" + param)
		require.Error(t, err, param)
		assert.Contains(t, err.Error(), "do not apply to a store")
		assert.NotContains(t, err.Error(), "hunter22")
	}
	p, err = parseURL("redis://c1:7000?addr=c2:7000&pool_size=5")
	require.NoError(t, err)
	require.NotNil(t, p.cluster)
	assert.Equal(t, []string{"c1:7000", "c2:7000"}, p.cluster.Addrs)
	assert.Equal(t, 5, p.cluster.PoolSize)
}
