package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/admin"
	"github.com/tokenproxy/tokenproxy/internal/buildinfo"
	"github.com/tokenproxy/tokenproxy/proxy"
)

// The reloader driven poll by poll: a refused file is tried once, not at every poll, and again when it
// changes.
func TestAReloaderTriesARefusedFileOncePerChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "routes.yaml")
	good := "routes:\n  - name: a\n    hosts: [a.example]\n    tokenUrl: https://auth.example/t\n    clientId: c\n    clientSecret: s\n"
	require.NoError(t, os.WriteFile(path, []byte(good), 0o600))
	keyFile := ""
	cf := configFlags{path: &path, keyFile: &keyFile}
	cfg, err := cf.load()
	require.NoError(t, err)
	srv, err := proxy.New(cfg, proxy.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	metrics := admin.NewMetrics(buildinfo.Read())
	r := &reloader{cf: cf, srv: srv, metrics: metrics, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		listen: cfg.Listen, sources: cfg.Sources}

	ctx := context.Background()
	poll := func() { r.poll(ctx) }
	reloads := func(result string) float64 {
		return counterValue(t, metrics, "tokenproxy_config_reloads_total", result)
	}

	poll()
	assert.Zero(t, reloads("success")+reloads("failure"), "nothing changed, nothing loaded")

	require.NoError(t, os.WriteFile(path, []byte(good+"    tokenPth: x\n"), 0o600))
	for range 5 {
		poll()
	}
	assert.Equal(t, 1.0, reloads("failure"), "five polls, one attempt: the file did not change again")

	require.NoError(t, os.WriteFile(path, []byte(good+"    scop: x\n"), 0o600))
	poll()
	assert.Equal(t, 2.0, reloads("failure"), "changed, still broken: tried again")

	require.NoError(t, os.WriteFile(path, []byte(good+"    scope: x\n"), 0o600))
	poll()
	poll()
	assert.Equal(t, 1.0, reloads("success"))
	assert.Equal(t, "x", srv.Config().Routes[0].Token.Scope)

	assert.Nil(t, r.failed)

	// Wired to its channels: a signal reloads even when nothing changed; a tick polls.
	tick, hup := make(chan time.Time), make(chan os.Signal)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(runCtx, tick, hup)
	}()
	hup <- os.Interrupt
	require.Eventually(t, func() bool { return reloads("success") == 2 }, 10*time.Second, time.Millisecond)
	require.NoError(t, os.WriteFile(path, []byte(good), 0o600))
	tick <- time.Now()
	require.Eventually(t, func() bool { return reloads("success") == 3 }, 10*time.Second, time.Millisecond)
	cancel()
	<-done
	assert.Empty(t, srv.Config().Routes[0].Token.Scope)
}

func counterValue(t *testing.T, m *admin.Metrics, name, result string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return s.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{result=%q}", name, result)
	return 0
}
