package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

// Serve runs until its context ends, then drains and returns nil, having logged that it stopped.
func TestServeStopsCleanlyWhenItsContextEnds(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir()) // where health's record of the admin address goes
	path := filepath.Join(t.TempDir(), "routes.yaml")
	require.NoError(t, os.WriteFile(path, []byte("listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nroutes: []\n"), 0o600))
	var logs testkit.LogBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() {
		served <- Serve(ctx, Settings{Files: ConfigFiles{Path: path}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	}()
	testkit.WaitForShowing(t, "Serve to listen", func() bool { return strings.Contains(logs.String(), "msg=listening") }, logs.String)
	cancel()
	var err error
	testkit.WaitForShowing(t, "Serve to return", func() bool {
		select {
		case err = <-served:
			return true
		default:
			return false
		}
	}, logs.String)
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "msg=stopped")
}

// A configuration Serve cannot put in service is a *ConfigError carrying every problem, returned before
// anything listens.
func TestServeReturnsAConfigErrorBeforeListening(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routes.yaml")
	require.NoError(t, os.WriteFile(path, []byte("listen: nowhere\nroutes: {}\n"), 0o600))
	var logs testkit.LogBuffer
	err := Serve(context.Background(), Settings{Files: ConfigFiles{Path: path}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	var ce *ConfigError
	require.True(t, errors.As(err, &ce), "%v", err)
	var problems *config.Error
	require.True(t, errors.As(err, &problems))
	assert.Len(t, problems.Problems, 2, "%v", problems.Problems)
	assert.NotContains(t, logs.String(), "msg=listening")
}

// When the admin endpoints cannot listen, Serve returns the error, having logged it, and leaves the
// proxy's port as it found it.
func TestServeReleasesTheProxyPortWhenAdminCannotListen(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	listen := free.Addr().String()
	require.NoError(t, free.Close())
	path := filepath.Join(t.TempDir(), "routes.yaml")
	require.NoError(t, os.WriteFile(path, []byte("listen: "+listen+"\nadmin: "+taken.Addr().String()+"\nroutes: []\n"), 0o600))
	var logs testkit.LogBuffer
	err = Serve(context.Background(), Settings{Files: ConfigFiles{Path: path}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	require.Error(t, err)
	var ce *ConfigError
	assert.False(t, errors.As(err, &ce), "an address in use is no configuration problem")
	assert.Contains(t, logs.String(), "cannot listen for the admin endpoints")
	again, err := net.Listen("tcp", listen)
	require.NoError(t, err, "the proxy's port is free again")
	require.NoError(t, again.Close())
}
