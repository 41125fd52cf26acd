package redisstore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// Twenty replicas, ten callers each, all cold at once, on a Redis the test keeps busy: one token request.
// (It found a replica that saw no token, then the fleet's token appear, and fetched to replace that one.)
func TestTwentyReplicasAtOnceFetchOneToken(t *testing.T) {
	r := startRedis(t)
	var fetches atomic.Int64
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":3600}`, fetches.Add(1))
	}))
	t.Cleanup(endpoint.Close)
	metrics := &recordingMetrics{}
	var caches []*tokensource.Cache
	var fs []*tokensource.Fetcher
	for range 20 {
		f, err := tokensource.NewFetcher(tokensource.Config{TokenURL: endpoint.URL, ClientID: "c", ClientSecret: "s"}, tokensource.Options{})
		require.NoError(t, err)
		fs = append(fs, f)
		s, err := New(Options{Client: r.client(), SecretKey: secretA, Metrics: metrics, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(t, err)
		c := tokensource.NewCache(tokensource.CacheOptions{Store: s})
		t.Cleanup(c.Close)
		caches = append(caches, c)
	}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := caches[i%20].Token(context.Background(), fs[i%20])
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	if !assert.EqualValues(t, 1, fetches.Load()) {
		metrics.mu.Lock()
		t.Log(metrics.counts)
		metrics.mu.Unlock()
	}
}
