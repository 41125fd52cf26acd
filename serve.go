package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tokenproxy/tokenproxy/admin"
	"github.com/tokenproxy/tokenproxy/internal/buildinfo"
	"github.com/tokenproxy/tokenproxy/internal/logging"
	"github.com/tokenproxy/tokenproxy/internal/runstate"
	"github.com/tokenproxy/tokenproxy/proxy"
	"github.com/tokenproxy/tokenproxy/redisstore"
)

const (
	drainTimeout = 30 * time.Second
	// resolveTimeout bounds issuer discovery at start-up and at each reload.
	resolveTimeout = 30 * time.Second
)

// runServe runs the proxy until SIGTERM or SIGINT, reloading on SIGHUP and when a configuration file changes.
func runServe(args []string, _ io.Reader, _, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy", "", stderr)
	fs.Usage = func() { // the whole usage: serve is what tokenproxy does without a command
		fmt.Fprintf(stderr, "%s\n\ntokenproxy [serve] flags:\n", usage)
		fs.PrintDefaults()
	}
	cf := addConfigFlags(fs)
	level := fs.String("log-level", "info", "debug | info | warn | error")
	format := fs.String("log-format", "text", "text | json")
	every := fs.Duration("reload-interval", 2*time.Second, "how often configuration files are compared for a reload; 0: only on SIGHUP")
	drainDelay := fs.Duration("drain-delay", 0, "after SIGTERM, how long /readyz fails while the proxy still accepts, so load balancers stop sending before the drain")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	log, flushLog, err := logging.New(stderr, *level, *format, true)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy: %v\n", err)
		return 2
	}
	defer flushLog() // lines wait in a buffer for at most logging.FlushInterval; none is lost on the way out
	// Signals are caught before anything is announced: a SIGHUP right after "listening" must reload, not
	// end the process.
	stopping, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	loaded, cfg, err := cf.loadResolved()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}

	opts := proxy.Options{Logger: log}
	var metrics *admin.Metrics
	if cfg.Admin != "" {
		metrics = admin.NewMetrics(buildinfo.Read())
		opts.Metrics = metrics
	}
	if cfg.Store != nil {
		so := redisstore.Options{SecretKey: cfg.Store.SecretKey, KeyPrefix: cfg.Store.KeyPrefix, Logger: log}
		if metrics != nil {
			so.Metrics = metrics
		}
		store, err := redisstore.Open(cfg.Store.URL, cfg.Store.Password, so)
		if err != nil {
			fmt.Fprintf(stderr, "tokenproxy: store: %v\n", err)
			return 2
		}
		defer store.Close()
		opts.TokenStore = store
		log.Info("tokens are shared through the store", "store", store.Where(), "key_prefix", store.KeyPrefix())
	}
	srv, err := proxy.New(cfg, opts)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy: %v\n", err)
		return 2
	}
	for _, w := range srv.Warnings() {
		log.Warn(w)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.Listen, "error", err)
		return 1
	}
	var adm *admin.Server
	adminAddr := ""
	if cfg.Admin != "" {
		aln, err := net.Listen("tcp", cfg.Admin)
		if err != nil {
			log.Error("cannot listen for the admin endpoints", "addr", cfg.Admin, "error", err)
			return 1
		}
		adminAddr = aln.Addr().String()
		srv.ListensAlsoOn(aln.Addr())
		adm = admin.New(srv, metrics, log)
		metrics.ConfigLoaded(time.Now())
		go func() {
			if err := adm.Serve(aln); err != nil {
				log.Error("admin endpoints stopped", "error", err)
			}
		}()
	}
	// tokenproxy health asks the admin address recorded here, which a reload that changes admin does not move.
	removeRecord, recordErr := runstate.Write(cf.path, adminAddr)
	if recordErr != nil {
		log.Debug("tokenproxy health will read the admin address from the routes file: cannot record it", "dir", runstate.Dir(), "error", recordErr)
	} else {
		defer removeRecord()
	}
	log.Info("listening", "addr", ln.Addr().String(), "admin", adminAddr, "config", cfg.File, "routes", len(cfg.Routes))

	r := &reloader{load: cf.load, srv: srv, metrics: metrics, log: log, listen: cfg.Listen, admin: cfg.Admin, store: storeOf(cfg), sources: loaded.Sources,
		adminUnrecorded: recordErr != nil}
	var tick <-chan time.Time // nil: never, only SIGHUP
	if *every > 0 {
		ticker := time.NewTicker(*every)
		defer ticker.Stop()
		tick = ticker.C
	}
	reloading := make(chan struct{})
	go func() {
		defer close(reloading)
		r.run(stopping, tick, hup)
	}()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		log.Error("serving stopped", "error", err)
		return 1
	case <-stopping.Done():
	}
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	stop()
	srv.StartDrain()
	if *drainDelay > 0 {
		log.Info("stopping: not ready any more, still serving until load balancers have noticed", "drain_delay", drainDelay.String())
		select {
		case <-time.After(*drainDelay):
		case <-again: // a second signal cuts the delay short
		}
	}
	drained := make(chan struct{})
	defer close(drained)
	go func() {
		// A signal during the drain stops at once; the buffered log lines are written first.
		select {
		case <-again:
			select {
			case <-drained: // the drain ended as the signal came: a clean stop after all
				return
			default:
			}
		case <-drained:
			return
		}
		log.Warn("stopping at once: a second signal during the drain; requests in flight are cut off")
		flushLog()
		os.Exit(1)
	}()
	log.Info("stopping: finishing requests in flight", "timeout", drainTimeout.String())
	drain, cancelDrain := context.WithTimeout(context.Background(), drainTimeout)
	defer cancelDrain()
	if err := srv.Shutdown(drain); errors.Is(err, context.DeadlineExceeded) {
		log.Warn("requests still running after the drain timeout were cut off", "timeout", drainTimeout.String())
	} else if err != nil {
		log.Warn("shutdown", "error", err)
	}
	<-reloading // ended with the signal's context
	if adm != nil {
		_ = adm.Shutdown(drain)
	}
	log.Info("stopped")
	return 0
}
