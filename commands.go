package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tokenproxy/tokenproxy/check"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/mitm"
	"github.com/tokenproxy/tokenproxy/secrets"
	"github.com/tokenproxy/tokenproxy/tokensource"
	"golang.org/x/term"
)

// configFlags are the flags of every subcommand that reads routes.yaml.
type configFlags struct {
	path, keyFile *string
}

func addConfigFlags(fs *flag.FlagSet) configFlags {
	return configFlags{
		path:    fs.String("config", envOr("TOKENPROXY_CONFIG", "routes.yaml"), "routes file (default $TOKENPROXY_CONFIG or ./routes.yaml)"),
		keyFile: fs.String("secret-key-file", "", "file with the base64 key for aes256gcm: secrets (default $"+secrets.KeyEnv+")"),
	}
}

func (c configFlags) key() ([]byte, error) {
	if *c.keyFile == "" {
		if v := os.Getenv(secrets.KeyEnv); v != "" {
			return secrets.ParseKey(v)
		}
		return nil, nil
	}
	return secrets.LoadKeyFile(*c.keyFile)
}

func (c configFlags) load() (*config.Config, error) {
	key, err := c.key()
	if err != nil {
		return nil, fmt.Errorf("tokenproxy: %v", err)
	}
	return config.Load(*c.path, config.LoadOptions{SecretKey: key})
}

// loadResolved loads the configuration and finds the token endpoints of routes that name an issuer.
func (c configFlags) loadResolved() (*config.Config, error) {
	cfg, err := c.load()
	if err != nil {
		return nil, err
	}
	return config.Resolve(context.Background(), cfg, nil)
}

func runCA(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy ca", stderr)
	out := fs.String("out", "", "directory to write ca.crt and ca.key into")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" {
		fmt.Fprintln(stderr, "tokenproxy ca: -out DIR is required")
		return 2
	}
	certFile, keyFile, err := mitm.WriteCA(*out)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy ca: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s (give this to the app to trust)\nwrote %s (mode 0600, for tokenproxy only)\n", certFile, keyFile)
	return 0
}

// runEncrypt reads a secret on stdin and prints the aes256gcm: value to paste into routes.yaml.
func runEncrypt(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy encrypt", stderr)
	keyFile := fs.String("secret-key-file", "", "file with the base64 key (default $"+secrets.KeyEnv+")")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	key, err := configFlags{keyFile: keyFile}.key()
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy encrypt: %v\n", err)
		return 2
	}
	if key == nil {
		newKey, _ := secrets.NewKey()
		fmt.Fprintf(stderr, "tokenproxy encrypt: %v\nA new key, if you need one (keep it out of routes.yaml):\n  %s=%s\n",
			secrets.ErrNoKey, secrets.KeyEnv, newKey)
		return 2
	}
	secret, err := readSecret(stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy encrypt: reading stdin: %v\n", err)
		return 1
	}
	if secret == "" {
		fmt.Fprintln(stderr, "tokenproxy encrypt: stdin is empty; pipe the secret in: tokenproxy encrypt < secret.txt")
		return 2
	}
	value, err := secrets.Encrypt(key, secret)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy encrypt: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, value)
	return 0
}

// readSecret reads one line; on a terminal without echo, so the secret does not stay on the screen.
func readSecret(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "secret (not echoed): ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		return strings.TrimRight(string(b), "\r\n"), err
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 64<<10)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// runCheck test-fires the routes; exit 0 only when every step passed.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy check", stderr)
	cf := addConfigFlags(fs)
	route := fs.String("route", "", "check only this route")
	target := fs.String("url", "", "also send one GET to this URL with the route's token")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := cf.loadResolved()
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
		Color: isTerminal(stdout),
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
