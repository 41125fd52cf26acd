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
	"github.com/tokenproxy/tokenproxy/internal/testkit"
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

func (l *lookups) RefusalBackoff(string) {}

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
	require.Eventually(t, func() bool { return c.Waiting() == 2 }, 10*time.Second, time.Millisecond, "both callers on one fetch")
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
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
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
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
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

// One caller giving up (its deadline, its app gone) says nothing about the token endpoint: the next caller
// is not backed off.
func TestACallersCancellationIsNotAnEndpointFailure(t *testing.T) {
	slow := make(chan struct{})
	var calls atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-slow:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = fmt.Fprint(w, `{"access_token":"fine","expires_in":600}`)
	}))
	defer ts.Close()
	defer close(slow)
	c := NewCache(CacheOptions{})
	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s"}, Options{})
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Fresh(ctx, f)
	require.Error(t, err)
	tok, err := c.Fresh(context.Background(), f)
	require.NoError(t, err, "the first caller's deadline put the endpoint into backoff")
	assert.Equal(t, "fine", tok.Value)
	assert.True(t, c.State(f).BackoffUntil.IsZero())
}

// Callers racing past the backoff check while a failing fetch ends must not start another: one attempt per
// backoff window, however many callers there are.
func TestOneAttemptPerBackoffWindow(t *testing.T) {
	var attempts atomic.Int64
	ts := newTokenServer(t, func(_ int64, w http.ResponseWriter) {
		attempts.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	c := NewCache(CacheOptions{Clock: clock})
	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s"}, Options{Clock: clock})
	require.NoError(t, err)
	const rounds, callers = 30, 50
	for round := 1; round <= rounds; round++ {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, _, err := c.Token(context.Background(), f)
				assert.Error(t, err)
			}()
		}
		close(start)
		wg.Wait()
		require.EqualValues(t, round, attempts.Load(), "round %d: one attempt per window", round)
		clock.Advance(BackoffMax + RetryAfterMax) // past any backoff
	}
}

// Refusals: a refused token is replaced at once; a token fetched after a refusal and refused too stops
// refusals from fetching for 1 s, then 2 s, doubling; a refusal of a token in good standing starts over.
func TestRefusalsBackOffWhenFreshTokensAreRefusedToo(t *testing.T) {
	ts := newTokenServer(t, func(n int64, w http.ResponseWriter) {
		_, _ = fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":3600}`, n)
	})
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	c := NewCache(CacheOptions{Clock: clock})
	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s"}, Options{Clock: clock})
	require.NoError(t, err)
	token := func() *Token {
		t.Helper()
		tok, _, err := c.Token(context.Background(), f)
		require.NoError(t, err)
		return tok
	}
	first := token()
	assert.True(t, c.Reject(f, first), "refused at once after issue: replaced")
	second := token()
	assert.Equal(t, "tok-2", second.Value)
	assert.False(t, c.Reject(f, second), "the replacement refused too: back off")
	assert.Equal(t, clock.Now().Add(time.Second), c.State(f).RefusalsUntil)
	assert.False(t, c.Reject(f, second))
	clock.Advance(time.Second)
	assert.True(t, c.Reject(f, second), "the backoff is over: one more fresh token")
	third := token()
	assert.Equal(t, "tok-3", third.Value)
	assert.False(t, c.Reject(f, third))
	assert.Equal(t, clock.Now().Add(2*time.Second), c.State(f).RefusalsUntil, "doubled")
	clock.Advance(2 * time.Second)
	assert.True(t, c.Reject(f, third))
	fourth := token()
	assert.EqualValues(t, 4, ts.Count.Load())

	// The supplier takes the fourth token; much later its regular successor is refused once: that starts over.
	clock.Advance(time.Hour) // the fourth expires; its successor is fetched the ordinary way
	fifth := token()
	assert.NotEqual(t, fourth.Value, fifth.Value)
	assert.True(t, c.Reject(f, fifth))
	sixth := token()
	assert.False(t, c.Reject(f, sixth))
	assert.Equal(t, clock.Now().Add(time.Second), c.State(f).RefusalsUntil, "back to 1 s")
}

// A request still running on a configuration that a reload replaced may ask for credentials the reload
// dropped: it is served, but nothing is kept for them and no refresh starts.
func TestDroppedCredentialsAreNotKeptAgain(t *testing.T) {
	ts := newTokenServer(t, func(n int64, w http.ResponseWriter) {
		_, _ = fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":100}`, n)
	})
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	c := NewCache(CacheOptions{Clock: clock})
	t.Cleanup(c.Close)
	kept, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "kept", ClientSecret: "s"}, Options{Clock: clock})
	require.NoError(t, err)
	gone, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "gone", ClientSecret: "s"}, Options{Clock: clock})
	require.NoError(t, err)
	c.Retain([]*Fetcher{kept})

	tok, via, err := c.Token(context.Background(), gone)
	require.NoError(t, err)
	assert.Equal(t, ViaFetch, via)
	assert.Nil(t, c.State(gone).Token, "nothing kept for dropped credentials")
	clock.Advance(85 * time.Second)
	_, _, err = c.Token(context.Background(), gone)
	require.NoError(t, err)
	c.refreshes.Wait()
	assert.EqualValues(t, 2, ts.Count.Load(), "each straggler fetches; no refresh ran")
	assert.NotEqual(t, "", tok.Value)

	_, via, err = c.Token(context.Background(), kept)
	require.NoError(t, err)
	assert.Equal(t, ViaFetch, via)
	_, via, err = c.Token(context.Background(), kept)
	require.NoError(t, err)
	assert.Equal(t, ViaHit, via, "credentials in service are kept as ever")
}
