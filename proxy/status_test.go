package proxy

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// heldStore is a shared store whose every slot says the fleet holds refusals back for an hour, counting
// how often it is asked.
type heldStore struct {
	*tokensource.MemoryStore
	asked atomic.Int32
}

func (s *heldStore) Slot(key string) tokensource.Slot { return heldSlot{s.MemoryStore.Slot(key), s} }

type heldSlot struct {
	tokensource.Slot
	s *heldStore
}

func (h heldSlot) RefusalsHeld(context.Context) time.Time {
	h.s.asked.Add(1)
	return time.Now().Add(time.Hour)
}

// /routes asks the shared store for the fleet's refusal holds, and stops asking once its time is up;
// /metrics (Status) never asks.
func TestFleetStatusAsksTheStoreWithinItsTime(t *testing.T) {
	cfg, err := config.Parse("routes.yaml", []byte(`
routes:
  - {name: a, hosts: [a.test], tokenUrl: "https://auth.test/t", clientId: c, clientSecret: s}
  - {name: b, hosts: [b.test], tokenUrl: "https://auth.test/t", clientId: d, clientSecret: s}
`), config.LoadOptions{})
	require.NoError(t, err)
	store := &heldStore{MemoryStore: tokensource.NewMemoryStore()}
	srv, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), TokenStore: store})
	require.NoError(t, err)

	for _, r := range srv.Status() {
		assert.Nil(t, r.Token.RefusalsBackedOffUntil)
	}
	assert.Zero(t, store.asked.Load(), "Status (the metrics) never asks the store")

	routes := srv.FleetStatus(context.Background())
	require.Len(t, routes, 2)
	for _, r := range routes {
		require.NotNil(t, r.Token.RefusalsBackedOffUntil, r.Name)
		assert.WithinDuration(t, time.Now().Add(time.Hour), *r.Token.RefusalsBackedOffUntil, time.Minute)
	}
	assert.EqualValues(t, 2, store.asked.Load())

	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, r := range srv.FleetStatus(done) {
		assert.Nil(t, r.Token.RefusalsBackedOffUntil, "time is up: the store is not asked")
	}
	assert.EqualValues(t, 2, store.asked.Load())
}
