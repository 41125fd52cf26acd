package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/tokenproxy/tokenproxy/admin"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/proxy"
	"github.com/tokenproxy/tokenproxy/redisstore"
)

// reloader puts a new configuration in service on SIGHUP, and when any file the configuration was read from
// changes content (routes.yaml, secret, key, certificate and CA files; a Kubernetes ..data symlink swap
// included) and has settled. A configuration that does not load or resolve is refused and the one in
// service stays.
type reloader struct {
	load          func() (*config.Config, error) // reads the configuration files
	srv           *proxy.Server
	metrics       *admin.Metrics // nil without admin endpoints
	log           *slog.Logger
	listen, admin string          // fixed at start: changing them takes a restart
	store         string          // likewise: the store's URL and key prefix at start, "" for none
	sources       []config.Source // of the configuration in service
	failed        []config.Source // of the last refused attempt, until one succeeds
	// adminUnrecorded is set when tokenproxy health has no record of the admin address and reads routes.yaml.
	adminUnrecorded bool
	// retryAt is when a reload refused because an issuer could not be reached is tried again, whether
	// or not a file changes; retryWait doubles with each such refusal.
	retryAt   time.Time
	retryWait time.Duration
	// settling is set while a change waits for the next poll; read is every file that poll must read the
	// same (its path and digest), routes.yaml and the files it names, as the last poll read them.
	settling bool
	read     []config.Source
	now      func() time.Time // nil: time.Now
}

// newReloader returns the reloader of p, which serves cfg, read from sources, since start; load reads the
// configuration files again.
func newReloader(load func() (*config.Config, error), p *running, cfg *config.Config, sources []config.Source) *reloader {
	return &reloader{load: load, srv: p.srv, metrics: p.metrics, log: p.log, listen: cfg.Listen, admin: cfg.Admin,
		store: storeOf(cfg), sources: sources}
}

// Discovery retries after a reload failed to reach an issuer: 5 s, doubling up to a minute.
const (
	discoveryRetryMin = 5 * time.Second
	discoveryRetryMax = time.Minute
)

func (r *reloader) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

// run reloads on each hup, and on each tick when a file changed, until ctx ends.
func (r *reloader) run(ctx context.Context, tick <-chan time.Time, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload(ctx, "SIGHUP")
		case <-tick:
			r.poll(ctx)
		}
	}
}

// poll puts a changed configuration in service once it has settled: every file it reads (routes.yaml and
// the files it names) must read the same at two polls in a row, so that a file being written in place is
// not served in part unless its writer pauses for longer than a poll interval. A change is thus served, or
// refused, at the second poll that sees it. A refused attempt is tried again only once its own files
// change, not at every poll.
func (r *reloader) poll(ctx context.Context) {
	watched := r.sources
	if r.failed != nil {
		watched = r.failed
	}
	retry := !r.retryAt.IsZero() && !r.clock().Before(r.retryAt)
	if !r.settling && !retry && !config.Changed(watched) {
		return
	}
	loaded, err := r.load()
	read := sourcesRead(loaded, err)
	switch {
	case config.SameSources(read, watched):
		// Back to what was last put in service or refused: no change waits, and only an issuer retry is due.
		r.settling, r.read = false, nil
		if retry {
			r.apply(ctx, "retrying issuer discovery", loaded, err)
		}
	case !r.settling || !config.SameSources(read, r.read):
		r.settling, r.read = true, read
		r.log.Debug("configuration files changed; they are loaded once they read the same at the next poll")
	default:
		r.settling, r.read = false, nil
		r.apply(ctx, "files changed", loaded, err)
	}
}

// sourcesRead is every file a load read, with its content's digest, whether or not it succeeded.
func sourcesRead(loaded *config.Config, err error) []config.Source {
	var ce *config.Error
	switch {
	case err == nil:
		return loaded.Sources
	case errors.As(err, &ce):
		return ce.Sources
	}
	return nil
}

// reload loads the configuration now and puts it in service (SIGHUP: the operator says the files are ready).
func (r *reloader) reload(ctx context.Context, reason string) {
	loaded, err := r.load()
	r.apply(ctx, reason, loaded, err)
}

// apply puts what a load returned in service, or refuses it.
func (r *reloader) apply(ctx context.Context, reason string, loaded *config.Config, err error) {
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			r.refuse(reason, err, ce.Sources)
		} else {
			r.refuse(reason, err, r.sources)
		}
		return
	}
	// The clients rules go with the address actually listened on, which only a restart changes.
	if host, _, err := net.SplitHostPort(r.listen); err == nil && !config.IsLoopback(host) && len(loaded.Clients) == 0 {
		r.refuse(reason, &config.Error{Problems: []string{fmt.Sprintf("%s: clients: tokenproxy listens on %s, beyond loopback, "+
			"until a restart: the new configuration needs clients, or anyone who reaches it could spend the routes' tokens",
			loaded.File, r.listen)}}, loaded.Sources)
		return
	}
	resolveCtx, cancel := context.WithTimeout(ctx, resolveTimeout)
	cfg, err := config.Resolve(resolveCtx, loaded, nil, r.srv.Config())
	cancel()
	if err != nil {
		// An issuer out of reach may come back without any file changing: try again on a backoff.
		r.retryWait = min(max(2*r.retryWait, discoveryRetryMin), discoveryRetryMax)
		r.retryAt = r.clock().Add(r.retryWait)
		r.refuse(reason, err, loaded.Sources)
		return
	}
	if err := r.srv.Swap(cfg); err != nil {
		r.refuse(reason, err, loaded.Sources)
		return
	}
	r.retryAt, r.retryWait = time.Time{}, 0
	if cfg.Listen != r.listen {
		r.log.Warn("listen cannot change without a restart; still listening on the old address", "listen", r.listen, "configured", cfg.Listen)
	}
	if cfg.Admin != r.admin {
		msg := "admin cannot change without a restart; the admin endpoints stay where they were"
		if r.adminUnrecorded {
			msg += ", but tokenproxy health asks the new address: it could not be told the old one (no writable TMPDIR)"
		}
		r.log.Warn(msg, "admin", r.admin, "configured", cfg.Admin)
	}
	if storeOf(cfg) != r.store {
		r.log.Warn("store cannot change without a restart; tokens stay where they were kept")
	}
	r.sources, r.failed = loaded.Sources, nil
	r.log.Info("configuration reloaded", "reason", reason, "config", cfg.File, "routes", len(cfg.Routes))
	if r.metrics != nil {
		r.metrics.ConfigReloaded(true, time.Now())
	}
}

// refuse logs each problem of a refused configuration on its own line and keeps the one in service.
func (r *reloader) refuse(reason string, err error, sources []config.Source) {
	if sources == nil {
		sources = r.sources
	}
	r.failed = sources
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			r.log.Error("configuration reload refused; the previous configuration keeps serving", "reason", reason, "problem", p)
		}
	} else {
		r.log.Error("configuration reload refused; the previous configuration keeps serving", "reason", reason, "error", err)
	}
	if r.metrics != nil {
		r.metrics.ConfigReloaded(false, time.Now())
	}
}

// storeOf names a configuration's store for comparing reloads; it holds no password.
func storeOf(cfg *config.Config) string {
	if cfg.Store == nil {
		return ""
	}
	prefix := cfg.Store.KeyPrefix
	if prefix == "" {
		prefix = redisstore.DefaultKeyPrefix // as the store reads it: no change when the default is written out
	}
	return cfg.Store.URL + " " + prefix
}
