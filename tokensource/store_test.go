package tokensource

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Two caches on one store behave as one: the policy keeps tokens only in the store it was given, so a
// token one fetched is the other's hit, and a refusal one saw drops the token for both. (Two replicas on a
// shared store will do the same across processes.)
func TestCachesSharingAStoreShareTokensAndRefusals(t *testing.T) {
	ts := newTokenServer(t, func(n int64, w http.ResponseWriter) {
		_, _ = fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":3600}`, n)
	})
	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s"}, Options{})
	require.NoError(t, err)
	store := NewMemoryStore()
	one, two := NewCache(CacheOptions{Store: store}), NewCache(CacheOptions{Store: store})
	t.Cleanup(one.Close)
	t.Cleanup(two.Close)
	ctx := context.Background()

	tok, via, err := one.Token(ctx, f)
	require.NoError(t, err)
	assert.Equal(t, "tok-1", tok.Value)
	assert.Equal(t, ViaFetch, via)
	tok, via, err = two.Token(ctx, f)
	require.NoError(t, err)
	assert.Equal(t, "tok-1", tok.Value, "the other cache's token, from the store")
	assert.Equal(t, ViaHit, via)
	assert.EqualValues(t, 1, ts.Count.Load())

	assert.True(t, two.Reject(f, tok))
	tok, via, err = one.Token(ctx, f)
	require.NoError(t, err)
	assert.Equal(t, "tok-2", tok.Value, "the refused token is gone for both")
	assert.Equal(t, ViaFetch, via)

	// Credentials that leave the configuration leave the store too.
	one.Retain(nil)
	assert.Nil(t, store.Slot(f.key).Load(ctx))
}

// A cache without a store of its own keeps its tokens to itself.
func TestCachesWithoutAStoreKeepTheirOwn(t *testing.T) {
	ts := newTokenServer(t, func(n int64, w http.ResponseWriter) {
		_, _ = fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":3600}`, n)
	})
	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s"}, Options{})
	require.NoError(t, err)
	one, two := NewCache(CacheOptions{}), NewCache(CacheOptions{})
	t.Cleanup(one.Close)
	t.Cleanup(two.Close)
	a, _, err := one.Token(context.Background(), f)
	require.NoError(t, err)
	b, _, err := two.Token(context.Background(), f)
	require.NoError(t, err)
	assert.NotEqual(t, a.Value, b.Value)
	assert.EqualValues(t, 2, ts.Count.Load())
}
