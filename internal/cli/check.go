package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/tokenproxy/tokenproxy/check"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/logging"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// runCheck test-fires the routes; exit 0 only when every step passed.
func runCheck(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy check", "tokenproxy check [-config F] [-secret-key-file F] [-route NAME] [-url URL]", stderr)
	cf := addConfigFlags(fs)
	route := fs.String("route", "", "check only this route")
	target := fs.String("url", "", "also send one GET to this URL with the route's token")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	_, cfg, err := cf.LoadResolved(context.Background())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, TLSHandshakeTimeout: 10 * time.Second},
		Timeout:   30 * time.Second,
	}
	ok := check.Run(context.Background(), stdout, cfg, check.Options{
		Route: *route,
		URL:   *target,
		Color: logging.IsTerminal(stdout),
		Fetcher: func(r *config.Route) (*tokensource.Fetcher, error) {
			return tokensource.NewFetcher(r.Token, tokensource.Options{Route: r.Name, Logger: log})
		},
		Client: client,
	})
	if !ok {
		return 1
	}
	return 0
}
