package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary serve the harness's helper roles, as the harness's own binary does.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	os.Exit(m.Run())
}

// TestHarnessRunsEveryPart runs every part of the harness briefly, as the one documented command does at
// full length, and checks that each measured what it says without an error: the README's figures come
// from this code.
func TestHarnessRunsEveryPart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tokenproxy and runs every part of the harness")
	}
	rep, err := measure(options{
		rounds: 1, duration: 300 * time.Millisecond, conns: 4, rate: 200, rateDuration: 500 * time.Millisecond,
		economyFor: 3 * time.Second, burst: 400, keepAlive: 50, churned: 200, allocsN: 300, stallStreams: 20, peers: true,
		fleet: fleetOptions{sidecars: 3, requests: 300, lifetime: 5 * time.Second, length: 3 * time.Second},
	})
	require.NoError(t, err)
	md := rep.markdown("")
	sections := []string{"### Throughput, closed loop", "### Latency at a fixed rate", "### Memory and connections", "### Apps that read nothing",
		"### Allocations per request", "### Token economy", "### Targets"}
	if _, err := exec.LookPath("redis-server"); err == nil {
		sections = append(sections, "### Fleet")
	}
	for _, section := range sections {
		assert.Contains(t, md, section)
	}
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| ") && strings.Contains(line, "(last:") {
			t.Errorf("a target failed requests: %s", line)
		}
	}
	// The token economy's own targets hold at any length; the speed targets depend on the machine.
	for _, c := range rep.checks {
		if strings.HasPrefix(c.what, "400 requests") || strings.HasPrefix(c.what, "token endpoint down") ||
			strings.HasPrefix(c.what, "token revoked") || strings.HasPrefix(c.what, "supplier refusing") ||
			strings.HasPrefix(c.what, "goroutines and descriptors") || strings.HasPrefix(c.what, "fleet") ||
			strings.Contains(c.what, "that read nothing") || strings.Contains(c.what, "with a zero window") {
			assert.True(t, c.ok, "%s: %s", c.what, c.got)
		}
	}
	t.Log("\n" + md)
}
