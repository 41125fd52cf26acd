package redisstore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/proxy"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// holdReplica is one sidecar (a proxy.Server on a Store of its own) serving two routes on a shared Redis,
// with a clock the test moves. Route a's upstream refuses a's first token with 401 and accepts any later
// one, as a supplier does that revoked a token in use; route b is never requested.
type holdReplica struct {
	t        *testing.T
	redis    *redisServer
	clock    *testkit.Clock
	store    *Store
	metrics  *recordingMetrics
	logs     *testkit.LogBuffer
	srv      *proxy.Server
	client   *http.Client
	upstream string
	creds    []string     // the credentials keys of routes a and b, in the order the cache asked for them
	fetches  atomic.Int64 // token requests
	requests atomic.Int64 // requests that reached route a's upstream
}

// slotRecorder is the store as the cache sees it, noting which credentials it asks for.
type slotRecorder struct {
	*Store
	mu    sync.Mutex
	creds []string
}

func (r *slotRecorder) Slot(key string) tokensource.Slot {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.creds {
		if k == key {
			return r.Store.Slot(key)
		}
	}
	r.creds = append(r.creds, key)
	return r.Store.Slot(key)
}

func newHoldReplica(t *testing.T, r *redisServer) *holdReplica {
	h := &holdReplica{t: t, redis: r, clock: testkit.NewClock(time.UnixMilli(time.Now().UnixMilli())),
		metrics: &recordingMetrics{}, logs: &testkit.LogBuffer{}}
	var mu sync.Mutex
	issued := map[string]int{}
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		client, _, _ := req.BasicAuth()
		h.fetches.Add(1)
		mu.Lock()
		issued[client]++
		n := issued[client]
		mu.Unlock()
		_, _ = fmt.Fprintf(w, `{"access_token":"tok-%s-%d","expires_in":3600}`, client, n)
	}))
	t.Cleanup(tokens.Close)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h.requests.Add(1)
		if req.Header.Get("Authorization") == "Bearer tok-a-1" {
			http.Error(w, "token revoked", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "accepted "+strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer "))
	}))
	t.Cleanup(upstream.Close)
	h.upstream = upstream.URL

	cfg, err := config.Parse("routes.yaml", []byte(fmt.Sprintf(`
routes:
  - {name: a, hosts: ["%s"], tokenUrl: "%s", clientId: a, clientSecret: secret-of-a}
  - {name: b, hosts: [b.test], tokenUrl: "%s", clientId: b, clientSecret: secret-of-b}
`, upstream.Listener.Addr(), tokens.URL, tokens.URL)), config.LoadOptions{})
	require.NoError(t, err)
	h.store, err = New(Options{Client: r.client(), SecretKey: secretA, Now: h.clock.Now, Metrics: h.metrics,
		Logger: slog.New(slog.NewTextHandler(h.logs, nil))})
	require.NoError(t, err)
	rec := &slotRecorder{Store: h.store}
	h.srv, err = proxy.New(cfg, proxy.Options{Logger: slog.New(slog.NewTextHandler(h.logs, nil)), Clock: h.clock, TokenStore: rec})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = h.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.srv.Shutdown(ctx)
	})
	h.client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: ln.Addr().String()})}}
	t.Cleanup(h.client.CloseIdleConnections)

	// /routes asks the store about routes not served yet, in the configuration's order: a, then b.
	h.srv.FleetStatus(context.Background())
	rec.mu.Lock()
	h.creds = append([]string(nil), rec.creds...)
	rec.mu.Unlock()
	require.Len(t, h.creds, 2)
	return h
}

// holdKey is the Redis key of route i's refusal hold (0: a, 1: b).
func (h *holdReplica) holdKey(i int) string { return h.store.Slot(h.creds[i]).(*slot).holdKey() }

// held is what /routes shows as route i's refusalsBackedOffUntil; nil when refusals fetch.
func (h *holdReplica) held(i int) *time.Time {
	return h.srv.FleetStatus(context.Background())[i].Token.RefusalsBackedOffUntil
}

// get sends a request to route a through the proxy and returns the status and body the app gets.
func (h *holdReplica) get() (int, string) {
	resp, err := h.client.Get(h.upstream + "/orders")
	require.NoError(h.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return resp.StatusCode, string(b)
}

// A refusal hold in Redis stops every replica's 401 replay, so only a hold a replica sealed for that very
// route is one, and for no longer than the longest refusal backoff. Each case puts a value where route a's
// hold is kept and checks /routes and whether a request refused its token is replayed with a fresh one.
func TestOnlyASealedRefusalHoldOfItsOwnRouteHoldsAndNotForLong(t *testing.T) {
	r := startRedis(t)
	ctx := context.Background()
	day := 24 * time.Hour
	cases := []struct {
		name string
		put  func(h *holdReplica, other *Store) // writes route a's hold, as another replica or an intruder
		// holds is how long the hold keeps a's 401s from being replayed; zero: it is ignored.
		holds time.Duration
	}{{
		name: "another replica's hold",
		put: func(h *holdReplica, other *Store) {
			other.Slot(h.creds[0]).HoldRefusals(ctx, h.clock.Now().Add(30*time.Second))
		},
		holds: 30 * time.Second,
	}, {
		name: "another replica's hold of a day",
		put: func(h *holdReplica, other *Store) {
			other.Slot(h.creds[0]).HoldRefusals(ctx, h.clock.Now().Add(day))
			ttl, err := r.client().PTTL(ctx, h.holdKey(0)).Result()
			require.NoError(t, err)
			assert.LessOrEqual(t, ttl, tokensource.RefusalBackoffMax, "not kept in Redis for longer than it can hold")
		},
		holds: tokensource.RefusalBackoffMax,
	}, {
		name: "a plain number, as earlier versions wrote",
		put: func(h *holdReplica, _ *Store) {
			ms := strconv.FormatInt(h.clock.Now().Add(day).UnixMilli(), 10)
			require.NoError(t, r.client().Set(ctx, h.holdKey(0), ms, 0).Err())
		},
	}, {
		name: "another replica's hold, altered",
		put: func(h *holdReplica, other *Store) {
			other.Slot(h.creds[0]).HoldRefusals(ctx, h.clock.Now().Add(30*time.Second))
			sealed, err := r.client().Get(ctx, h.holdKey(0)).Bytes()
			require.NoError(t, err)
			sealed[len(sealed)-20] ^= 1
			require.NoError(t, r.client().Set(ctx, h.holdKey(0), sealed, 0).Err())
		},
	}, {
		name: "route b's hold, copied to a",
		put: func(h *holdReplica, other *Store) {
			other.Slot(h.creds[1]).HoldRefusals(ctx, h.clock.Now().Add(30*time.Second))
			require.NotNil(t, h.held(1), "where it was written, it holds")
			sealed, err := r.client().Get(ctx, h.holdKey(1)).Result()
			require.NoError(t, err)
			require.NoError(t, r.client().Set(ctx, h.holdKey(0), sealed, 0).Err())
		},
	}, {
		name: "route a's own token record, copied to its hold",
		put: func(h *holdReplica, other *Store) {
			sealed, err := other.seal(h.store.Slot(h.creds[0]).(*slot).redisKey, token("tok-a-9", time.Hour))
			require.NoError(t, err)
			require.NoError(t, r.client().Set(ctx, h.holdKey(0), sealed, 0).Err())
		},
	}, {
		name: "a sealed hold of a day",
		put: func(h *holdReplica, other *Store) {
			now := h.clock.Now()
			sealed, err := other.sealHold(h.holdKey(0), now, now.Add(day))
			require.NoError(t, err)
			require.NoError(t, r.client().Set(ctx, h.holdKey(0), sealed, day).Err())
		},
		holds: tokensource.RefusalBackoffMax,
	}, {
		name: "a sealed hold beginning a day from now",
		put: func(h *holdReplica, other *Store) {
			now := h.clock.Now()
			sealed, err := other.sealHold(h.holdKey(0), now.Add(day), now.Add(day+30*time.Second))
			require.NoError(t, err)
			require.NoError(t, r.client().Set(ctx, h.holdKey(0), sealed, 0).Err())
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.NoError(t, r.client().FlushAll(ctx).Err())
			h := newHoldReplica(t, r)
			other, err := New(Options{Client: r.client(), SecretKey: secretA, Now: h.clock.Now,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			require.NoError(t, err)
			c.put(h, other)
			start := h.clock.Now()

			if c.holds > 0 {
				until := h.held(0)
				require.NotNil(t, until, "/routes shows the hold")
				assert.Equal(t, start.Add(c.holds).UnixMilli(), until.UnixMilli())
				status, body := h.get()
				assert.Equal(t, http.StatusUnauthorized, status, "held: the app gets the supplier's 401, no replay")
				assert.Contains(t, body, "token revoked")
				assert.EqualValues(t, 1, h.requests.Load())
				assert.EqualValues(t, 1, h.fetches.Load())
				h.clock.Advance(c.holds - time.Millisecond)
				assert.NotNil(t, h.held(0), "a millisecond before its end, still held")
				h.clock.Advance(time.Millisecond)
			}
			assert.Nil(t, h.held(0), "/routes shows no hold")
			before := h.requests.Load()
			status, body := h.get()
			assert.Equal(t, http.StatusOK, status)
			assert.Equal(t, "accepted tok-a-2", body, "tok-a-1 refused, replayed with a fresh token")
			assert.EqualValues(t, before+2, h.requests.Load(), "the request and its replay")
			assert.EqualValues(t, 2, h.fetches.Load())
			assert.Nil(t, h.held(0))

			warnings := strings.Count(h.logs.String(), "a refusal hold in the shared store does not open")
			if c.holds > 0 {
				assert.Zero(t, warnings)
			} else {
				assert.Equal(t, 1, warnings, "logged once however often it is read")
				assert.Positive(t, h.metrics.get("held unreadable"))
			}
			for _, secret := range []string{"tok-a-1", "tok-a-2", "tok-a-9", "secret-of-a", "secret-of-b"} {
				assert.NotContains(t, h.logs.String(), secret)
			}
		})
	}
}
