package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tokenproxy/tokenproxy/internal/app"
	"github.com/tokenproxy/tokenproxy/internal/logging"
)

// runServe runs the proxy until SIGTERM or SIGINT, reloading on SIGHUP and when a configuration file changes.
func runServe(args []string, _ io.Reader, _, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy", "", stderr)
	fs.Usage = func() { // the whole usage: serve is what tokenproxy does without a command
		fmt.Fprintf(stderr, "%s\n\ntokenproxy [serve] flags:\n", usage)
		fs.PrintDefaults()
	}
	files := addConfigFlags(fs)
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
	err = app.Serve(context.Background(), app.Settings{Files: *files, Log: log, ReloadInterval: *every, DrainDelay: *drainDelay})
	var configErr *app.ConfigError
	switch {
	case errors.As(err, &configErr):
		fmt.Fprintln(stderr, configErr)
		return 2
	case err != nil: // logged
		return 1
	}
	return 0
}
