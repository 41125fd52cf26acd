// Command tokenproxy is a forward-proxy sidecar that puts OAuth 2.0 client-credentials tokens on the
// requests of apps that cannot fetch them themselves.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lmittmann/tint"
	"github.com/tokenproxy/tokenproxy/proxy"
)

const drainTimeout = 30 * time.Second

const usage = `usage:
  tokenproxy [-config routes.yaml] [-secret-key-file F] [-log-level info] [-log-format text]
  tokenproxy check [-config routes.yaml] [-secret-key-file F] [-route NAME] [-url URL]
  tokenproxy encrypt [-secret-key-file F] < secret
  tokenproxy ca -out DIR`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run returns the exit code: 0 after a clean stop, 1 when serving fails, 2 for bad flags or configuration.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "ca":
			return runCA(args[1:], stdout, stderr)
		case "encrypt":
			return runEncrypt(args[1:], stdin, stdout, stderr)
		case "check":
			return runCheck(args[1:], stdout, stderr)
		}
	}
	fs := newFlagSet("tokenproxy", stderr)
	cf := addConfigFlags(fs)
	level := fs.String("log-level", "info", "debug | info | warn | error")
	format := fs.String("log-format", "text", "text | json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy: %v\n", err)
		return 2
	}
	cfg, err := cf.loadResolved()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	srv, err := proxy.New(cfg, proxy.Options{Logger: log})
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
	log.Info("listening", "addr", ln.Addr().String(), "config", cfg.File, "routes", len(cfg.Routes))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		log.Error("serving stopped", "error", err)
		return 1
	case <-ctx.Done():
	}
	stop() // a second signal ends the process at once
	log.Info("stopping: finishing requests in flight", "timeout", drainTimeout)
	drain, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := srv.Shutdown(drain); errors.Is(err, context.DeadlineExceeded) {
		log.Warn("requests still running after the drain timeout were cut off", "timeout", drainTimeout)
	} else if err != nil {
		log.Warn("shutdown", "error", err)
	}
	log.Info("stopped")
	return 0
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	switch format {
	case "text":
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: lv, TimeFormat: time.DateTime, NoColor: !isTerminal(w)})), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv})), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
