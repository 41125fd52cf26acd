package redisstore

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Twenty replicas, ten callers each, all cold at once, on a Redis the test keeps busy: one token request.
// (It found a replica that saw no token, then the fleet's token appear, and fetched to replace that one.)
func TestTwentyReplicasAtOnceFetchOneToken(t *testing.T) {
	r := startRedis(t)
	f, fetches := countingEndpoint(t)
	metrics := &recordingMetrics{}
	caches := replicas(t, r, 20, metrics)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := caches[i%20].Token(context.Background(), f)
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
