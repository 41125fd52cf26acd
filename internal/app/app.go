// Package app runs tokenproxy's proxy: it loads the configuration, starts the proxy, its admin endpoints
// and the shared token store, reloads on SIGHUP and when a configuration file changes, and drains on
// SIGTERM. It knows nothing of flags: internal/cli turns them into Settings.
package app

import (
	"errors"
	"log/slog"
	"time"
)

// Settings are what Serve runs with.
type Settings struct {
	// Files are read at start and at each reload.
	Files ConfigFiles
	// Log receives every line the proxy logs.
	Log *slog.Logger
	// ReloadInterval is how often the configuration files are compared for a reload; 0: only on SIGHUP.
	ReloadInterval time.Duration
	// DrainDelay is how long, after SIGTERM, /readyz fails while the proxy still accepts, so load balancers
	// stop sending before the drain.
	DrainDelay time.Duration
}

// ConfigError is a configuration Serve cannot put in service as written: its message is for the operator,
// as it is (every problem on a line of its own).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// ErrInterrupted is returned when a second signal came during the drain: Serve returned without waiting
// for the requests in flight, which the process's exit cuts off.
var ErrInterrupted = errors.New("app: a second signal during the drain")
