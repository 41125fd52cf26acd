package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tokenproxy/tokenproxy/admin"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/buildinfo"
	"github.com/tokenproxy/tokenproxy/internal/runstate"
	"github.com/tokenproxy/tokenproxy/proxy"
	"github.com/tokenproxy/tokenproxy/redisstore"
)

// drainTimeout bounds how long requests in flight may finish after SIGTERM.
const drainTimeout = 30 * time.Second

// Serve runs the proxy until SIGTERM, SIGINT or the end of ctx, reloading on SIGHUP and when a
// configuration file changes. It returns nil after a clean stop, a *ConfigError when the configuration
// cannot be served (before anything listens), ErrInterrupted after a second signal during the drain, and
// any other error when serving failed; all but a *ConfigError have been logged.
func Serve(ctx context.Context, s Settings) error {
	log := s.Log
	// Signals are caught before anything is announced: a SIGHUP right after "listening" must reload, not
	// end the process.
	stopping, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	loaded, cfg, err := s.Files.LoadResolved(ctx)
	if err != nil {
		return &ConfigError{err}
	}
	p, err := newProxy(cfg, log)
	if err != nil {
		return err
	}
	defer p.close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.Listen, "error", err)
		return err
	}
	adminAddr, err := p.serveAdmin(cfg.Admin)
	if err != nil {
		_ = ln.Close()
		return err
	}
	// tokenproxy health asks the admin address recorded here, which a reload that changes admin does not move.
	removeRecord, recordErr := runstate.Write(s.Files.Path, adminAddr)
	if recordErr != nil {
		log.Debug("tokenproxy health will read the admin address from the routes file: cannot record it", "dir", runstate.Dir(), "error", recordErr)
	} else {
		defer removeRecord()
	}
	log.Info("listening", "addr", ln.Addr().String(), "admin", adminAddr, "config", cfg.File, "routes", len(cfg.Routes))

	r := newReloader(s.Files.Load, p, cfg, loaded.Sources)
	r.adminUnrecorded = recordErr != nil
	var tick <-chan time.Time // nil: never, only SIGHUP
	if s.ReloadInterval > 0 {
		ticker := time.NewTicker(s.ReloadInterval)
		defer ticker.Stop()
		tick = ticker.C
	}
	reloading := make(chan struct{})
	go func() {
		defer close(reloading)
		r.run(stopping, tick, hup)
	}()

	served := make(chan error, 1)
	go func() { served <- p.srv.Serve(ln) }()
	select {
	case err := <-served:
		log.Error("serving stopped", "error", err)
		return err
	case <-stopping.Done():
	}
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	stop()
	p.srv.StartDrain()
	p.delayDrain(s.DrainDelay, again)
	drain, cancelDrain := context.WithTimeout(context.Background(), drainTimeout)
	defer cancelDrain()
	if err := p.drain(drain, again); err != nil {
		return err
	}
	<-reloading // ended with the signal's context
	if p.adm != nil {
		_ = p.adm.Shutdown(drain)
	}
	log.Info("stopped")
	return nil
}

// running is the proxy with what serves beside it: its admin endpoints and metrics (nil without admin) and
// the shared token store (nil without one).
type running struct {
	srv     *proxy.Server
	metrics *admin.Metrics
	adm     *admin.Server
	store   *redisstore.Store
	log     *slog.Logger
}

// newProxy makes the proxy of cfg, with its metrics and store.
func newProxy(cfg *config.Config, log *slog.Logger) (*running, error) {
	p := &running{log: log}
	opts := proxy.Options{Logger: log}
	if cfg.Admin != "" {
		p.metrics = admin.NewMetrics(buildinfo.Read())
		opts.Metrics = p.metrics
	}
	if cfg.Store != nil {
		so := redisstore.Options{SecretKey: cfg.Store.SecretKey, KeyPrefix: cfg.Store.KeyPrefix, Logger: log}
		if p.metrics != nil {
			so.Metrics = p.metrics
		}
		store, err := redisstore.Open(cfg.Store.URL, cfg.Store.Password, so)
		if err != nil {
			return nil, &ConfigError{fmt.Errorf("tokenproxy: store: %w", err)}
		}
		p.store = store
		opts.TokenStore = store
		log.Info("tokens are shared through the store", "store", store.Where(), "key_prefix", store.KeyPrefix())
	}
	srv, err := proxy.New(cfg, opts)
	if err != nil {
		p.close()
		return nil, &ConfigError{fmt.Errorf("tokenproxy: %w", err)}
	}
	p.srv = srv
	for _, w := range srv.Warnings() {
		log.Warn(w)
	}
	return p, nil
}

// serveAdmin starts the admin endpoints on addr, when there is one, and returns where they listen.
func (p *running) serveAdmin(addr string) (string, error) {
	if addr == "" {
		return "", nil
	}
	aln, err := net.Listen("tcp", addr)
	if err != nil {
		p.log.Error("cannot listen for the admin endpoints", "addr", addr, "error", err)
		return "", err
	}
	p.srv.ListensAlsoOn(aln.Addr())
	p.adm = admin.New(p.srv, p.metrics, p.log)
	p.metrics.ConfigLoaded(time.Now())
	go func() {
		if err := p.adm.Serve(aln); err != nil {
			p.log.Error("admin endpoints stopped", "error", err)
		}
	}()
	return aln.Addr().String(), nil
}

// delayDrain keeps serving, not ready any more, for delay, or until a signal on again cuts it short.
func (p *running) delayDrain(delay time.Duration, again <-chan os.Signal) {
	if delay <= 0 {
		return
	}
	p.log.Info("stopping: not ready any more, still serving until load balancers have noticed", "drain_delay", delay.String())
	select {
	case <-time.After(delay):
	case <-again:
	}
}

// drain stops taking requests and lets those in flight finish until ctx ends; a signal on again returns
// ErrInterrupted at once.
func (p *running) drain(ctx context.Context, again <-chan os.Signal) error {
	p.log.Info("stopping: finishing requests in flight", "timeout", drainTimeout.String())
	shut := make(chan error, 1)
	go func() { shut <- p.srv.Shutdown(ctx) }()
	var err error
	select {
	case err = <-shut:
	case <-again:
		select {
		case err = <-shut: // the drain ended as the signal came: a clean stop after all
		default:
			p.log.Warn("stopping at once: a second signal during the drain; requests in flight are cut off")
			return ErrInterrupted
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		p.log.Warn("requests still running after the drain timeout were cut off", "timeout", drainTimeout.String())
	} else if err != nil {
		p.log.Warn("shutdown", "error", err)
	}
	return nil
}

func (p *running) close() {
	if p.store != nil {
		_ = p.store.Close()
	}
}
