package tokensource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lookups records what the cache reports.
type lookups struct {
	mu  sync.Mutex
	via map[Via]int
	got map[string]int // route + " " + result
}

func (l *lookups) TokenLookup(route string, via Via) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.via[via]++
}

func (l *lookups) TokenFetched(route, result string, _ time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got[route+" "+result]++
}

// Only the caller whose fetch it is says fetch; one that waited for it says wait.
func TestCacheSaysWhoFetchedAndWhoWaited(t *testing.T) {
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = fmt.Fprint(w, `{"access_token":"shared","expires_in":3600}`)
	}))
	defer ts.Close()
	m := &lookups{via: map[Via]int{}, got: map[string]int{}}
	c := NewCache(CacheOptions{Metrics: m})
	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s"}, Options{Route: "orders"})
	require.NoError(t, err)

	vias := make(chan Via, 2)
	for range 2 {
		go func() {
			_, via, err := c.Token(context.Background(), f)
			assert.NoError(t, err)
			vias <- via
		}()
	}
	require.Eventually(t, func() bool { return c.parked.Load() == 2 }, 10*time.Second, time.Millisecond, "both callers on one fetch")
	close(release)
	got := []Via{<-vias, <-vias}
	assert.ElementsMatch(t, []Via{ViaFetch, ViaWait}, got)
	_, via, err := c.Token(context.Background(), f)
	require.NoError(t, err)
	assert.Equal(t, ViaHit, via)
	assert.Equal(t, map[Via]int{ViaFetch: 1, ViaWait: 1, ViaHit: 1}, m.via)
	assert.Equal(t, map[string]int{"orders ok": 1}, m.got)
}

// Credentials that leave the configuration lose their token, and their background refresh stops.
func TestRetainDropsOtherCredentialsAndStopsTheirRefresh(t *testing.T) {
	refreshing := make(chan struct{})
	var once sync.Once
	ts := newTokenServer(t, func(n int64, w http.ResponseWriter) {
		_, _ = fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":100}`, n)
	})
	cancelled := make(chan struct{})
	var served atomic.Int64
	blocking := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1) == 1 {
			_, _ = fmt.Fprint(w, `{"access_token":"dropped","expires_in":100}`)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body) // net/http notices a client leaving only once the body is read
		once.Do(func() { close(refreshing) })
		<-r.Context().Done() // the refresh hangs until it is stopped
		close(cancelled)
	}))
	defer blocking.Close()
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	c := NewCache(CacheOptions{Clock: clock})
	kept, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "kept", ClientSecret: "s"}, Options{Clock: clock})
	require.NoError(t, err)
	gone, err := NewFetcher(Config{TokenURL: blocking.URL, ClientID: "gone", ClientSecret: "s"}, Options{Clock: clock})
	require.NoError(t, err)
	_, _, err = c.Token(context.Background(), kept)
	require.NoError(t, err)
	_, _, err = c.Token(context.Background(), gone)
	require.NoError(t, err)

	// Past 80 % of the lifetime a refresh starts; the server never answers it.
	clock.Advance(85 * time.Second)
	tok, via, err := c.Token(context.Background(), gone)
	require.NoError(t, err)
	assert.Equal(t, ViaHit, via)
	assert.Equal(t, "dropped", tok.Value)
	<-refreshing

	c.Retain([]*Fetcher{kept})
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the dropped credentials' refresh was not stopped")
	}
	c.refreshes.Wait()
	assert.Nil(t, c.State(gone).Token, "dropped")
	assert.Equal(t, "tok-1", c.State(kept).Token.Value, "kept")
	c.Close()
}

func TestStateShowsBackoff(t *testing.T) {
	ts := newTokenServer(t, func(n int64, w http.ResponseWriter) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	c := NewCache(CacheOptions{Clock: clock})
	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s"}, Options{Clock: clock})
	require.NoError(t, err)
	assert.Equal(t, State{}, c.State(f), "nothing known yet")
	_, _, err = c.Token(context.Background(), f)
	require.Error(t, err)
	st := c.State(f)
	assert.Nil(t, st.Token)
	var te *Error
	require.True(t, errors.As(st.LastError, &te))
	assert.Equal(t, 503, te.StatusCode)
	assert.True(t, st.BackoffUntil.After(clock.Now()))
	clock.Advance(BackoffMax + time.Second)
	st = c.State(f)
	assert.True(t, st.BackoffUntil.IsZero(), "the backoff is over")
	assert.NotNil(t, st.LastError, "the last error stays until a fetch succeeds")
}
