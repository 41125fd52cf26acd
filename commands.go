package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tokenproxy/tokenproxy/check"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/app"
	"github.com/tokenproxy/tokenproxy/internal/buildinfo"
	"github.com/tokenproxy/tokenproxy/internal/logging"
	"github.com/tokenproxy/tokenproxy/internal/runstate"
	"github.com/tokenproxy/tokenproxy/mitm"
	"github.com/tokenproxy/tokenproxy/redisstore"
	"github.com/tokenproxy/tokenproxy/secrets"
	"github.com/tokenproxy/tokenproxy/tokensource"
	"golang.org/x/term"
)

// addConfigFlags defines -config and -secret-key-file; the files are known once fs is parsed.
func addConfigFlags(fs *flag.FlagSet) *app.ConfigFiles {
	var f app.ConfigFiles
	fs.StringVar(&f.Path, "config", envOr("TOKENPROXY_CONFIG", "routes.yaml"), "the routes file (or set $TOKENPROXY_CONFIG)")
	fs.StringVar(&f.SecretKeyFile, "secret-key-file", "", "file with the base64 key for aes256gcm: secrets; without it, $"+secrets.KeyEnv)
	return &f
}

// runValidate checks routes.yaml as start-up would, without the network: no discovery, no token request.
func runValidate(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy validate", "tokenproxy validate [-config F] [-secret-key-file F] [-syntax-only]", stderr)
	cf := addConfigFlags(fs)
	syntaxOnly := fs.Bool("syntax-only", false, "check keys and values without the environment and without reading any file, for pipelines that hold no secrets")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	var cfg *config.Config
	var err error
	if *syntaxOnly {
		cfg, err = config.Load(cf.Path, config.LoadOptions{SyntaxOnly: true, CheckStoreURL: redisstore.CheckURL})
	} else {
		cfg, err = cf.Load()
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	what := "valid"
	if *syntaxOnly {
		what = "valid syntax"
	}
	routes := "routes"
	if len(cfg.Routes) == 1 {
		routes = "route"
	}
	fmt.Fprintf(stdout, "%s: %s, %d %s\n", cfg.File, what, len(cfg.Routes), routes)
	return 0
}

// runHealth asks the running proxy's admin endpoint whether it is ready: exit 0 when it is, 1 otherwise. It
// is the probe for images without a shell or curl (exec probes, compose healthchecks).
func runHealth(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy health", "tokenproxy health [-config F] [-timeout D]", stderr)
	path := fs.String("config", envOr("TOKENPROXY_CONFIG", "routes.yaml"), "the routes file whose admin address to ask (or set $TOKENPROXY_CONFIG)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	addr, err := adminAddress(*path)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy health: %v\n", err)
		return 1
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{Proxy: nil}}
	url := "http://" + dialable(addr) + "/readyz"
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy health: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "tokenproxy health: %s answered %d: %s", url, resp.StatusCode, body)
		return 1
	}
	fmt.Fprintf(stdout, "%s", body)
	return 0
}

// adminAddress is where the proxy serving the routes file path answers admin requests: the address it
// recorded at start, since a reload that changed admin in the file does not move it; without a record
// (none, or in a directory open to others), the file's.
func adminAddress(path string) (string, error) {
	if rec, ok, err := runstate.Read(path); err == nil && ok {
		if rec.Admin == "" {
			return "", fmt.Errorf("the tokenproxy serving %s started without admin endpoints; admin: host:port takes a restart", path)
		}
		return rec.Admin, nil
	}
	return config.ReadAdmin(path, nil)
}

// dialable turns a listen address into one to dial: an unspecified host (all interfaces) is this machine.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if ip != nil && ip.To4() == nil {
			return net.JoinHostPort("::1", port)
		}
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// runVersion prints the module version and the VCS revision the binary was built from.
func runVersion(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy version", "tokenproxy version", stderr)
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	info := buildinfo.Read()
	fmt.Fprintf(stdout, "tokenproxy %s (revision %s", info.Version, info.ShortRevision())
	if info.Time != "" {
		fmt.Fprintf(stdout, ", %s", info.Time)
	}
	fmt.Fprintf(stdout, ", %s)\n", info.GoVersion)
	if unknown := info.Unknown(); len(unknown) > 0 { // on stderr: scripts read the line above
		fmt.Fprintf(stderr, "tokenproxy version: this build does not know its %s (built with -buildvcs=false, or from sources without .git); set them when building:\n"+
			"  go build -ldflags \"-X %s=v1.2.3 -X %s=$(git rev-parse HEAD)\" -o tokenproxy .\n"+
			"  docker build --build-arg VERSION=v1.2.3 --build-arg REVISION=$(git rev-parse HEAD) .\n",
			strings.Join(unknown, " or "), buildinfo.VersionSymbol, buildinfo.RevisionSymbol)
	}
	return 0
}

// runCA writes a new interception CA and the trust files apps use: bundle.pem and truststore.p12 hold the
// machine's trusted roots and the CA, so an app that trusts them still trusts every other host.
func runCA(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy ca", "tokenproxy ca -out DIR [-roots FILE]", stderr)
	out := fs.String("out", "", "directory to write ca.crt, ca.key, bundle.pem and truststore.p12 into")
	rootsFile := fs.String("roots", "", "PEM bundle of the roots apps trust already; without it, $SSL_CERT_FILE or this system's bundle")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if *out == "" {
		fmt.Fprintln(stderr, "tokenproxy ca: -out DIR is required")
		return 2
	}
	rootsPEM, from, err := mitm.SystemRoots()
	if *rootsFile != "" {
		from = *rootsFile
		rootsPEM, err = os.ReadFile(*rootsFile)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy ca: %v\n", err)
		return 1
	}
	certFile, keyFile, err := mitm.WriteCA(*out)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy ca: %v\n", err)
		return 1
	}
	ca, err := mitm.LoadCA(certFile, keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy ca: %v\n", err)
		return 1
	}
	bundle, store, roots, err := mitm.WriteTrust(*out, ca.Leaf, rootsPEM)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy ca: %s: %v\n", from, err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s (mode 0600, for tokenproxy only)\n", keyFile)
	fmt.Fprintf(stdout, "wrote %s (the CA alone: for NODE_EXTRA_CA_CERTS, which adds to the default roots)\n", certFile)
	fmt.Fprintf(stdout, "wrote %s (%d roots from %s, then the CA: for SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE)\n", bundle, roots, from)
	fmt.Fprintf(stdout, "wrote %s (the same for Java: -Djavax.net.ssl.trustStore=%s -Djavax.net.ssl.trustStorePassword=%s)\n",
		store, store, mitm.TrustStorePassword)
	return 0
}

// runEncrypt reads a secret on stdin and prints the aes256gcm: value to paste into routes.yaml.
func runEncrypt(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy encrypt", "tokenproxy encrypt [-secret-key-file F] < secret", stderr)
	keyFile := fs.String("secret-key-file", "", "file with the base64 key; without it, $"+secrets.KeyEnv)
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	key, err := app.ConfigFiles{SecretKeyFile: *keyFile}.SecretKey()
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
