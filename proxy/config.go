package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tokenproxy/tokenproxy/secrets"
	"github.com/tokenproxy/tokenproxy/tokensource"
	"gopkg.in/yaml.v3"
)

// Config is a loaded, validated routes.yaml.
type Config struct {
	// File is the path the configuration was read from.
	File string
	// Listen is where apps send HTTP_PROXY traffic.
	Listen string
	// RejectUnmatched answers requests to hosts of no route with 403 instead of forwarding them.
	RejectUnmatched bool
	// CA signs the leaf certificates of intercepted hosts; nil when routes.yaml has no mitm section.
	CA *tls.Certificate
	// Routes in file order.
	Routes []*Route
}

// Route is one supplier: the hosts it covers, how to get its token and how to put it on requests.
type Route struct {
	Name  string
	Hosts []HostPattern
	Token tokensource.Config
	// Issuer, when set, names the authorization server whose metadata gives Token.TokenURL at start-up.
	Issuer string
	// Cache reuses one token until shortly before it expires; false fetches one per request.
	Cache bool
	// UpstreamTLS sends the app's plain-http requests upstream over https.
	UpstreamTLS bool
	// Header and Prefix say where the token goes: Header: Prefix+token.
	Header string
	Prefix string
	// Headers are set on every forwarded request of the route.
	Headers map[string]string
	// RetryOn401 replays a request once with a fresh token when the supplier answers 401, if its body is
	// at most RetryBodyLimit bytes.
	RetryOn401     bool
	RetryBodyLimit int64
}

// Route defaults.
const (
	DefaultHeader         = "Authorization"
	DefaultPrefix         = "Bearer "
	DefaultRetryBodyLimit = 1 << 20
)

// DefaultListen is used when routes.yaml names no listen address.
const DefaultListen = "127.0.0.1:3128"

// ConfigError lists every problem found in a configuration file, one line each.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string { return strings.Join(e.Problems, "\n") }

// LoadOptions are where the loader finds what routes.yaml refers to.
type LoadOptions struct {
	// LookupEnv expands ${VAR}; nil is os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// SecretKey decrypts aes256gcm: secrets; nil reads TOKENPROXY_SECRET_KEY through LookupEnv.
	SecretKey []byte
}

// LoadConfig reads and validates a routes.yaml, expanding ${VAR} from the environment. Relative paths
// inside it (secret, key, certificate and CA files) are relative to the file's directory.
func LoadConfig(path string, opts LoadOptions) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Problems: []string{fmt.Sprintf("%s: cannot read: %v", path, unwrapPathError(err))}}
	}
	return ParseConfig(path, data, opts)
}

// ParseConfig validates routes.yaml content; file names it in messages and anchors relative paths.
func ParseConfig(file string, data []byte, opts LoadOptions) (*Config, error) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &ConfigError{Problems: []string{yamlSyntaxProblem(file, err)}}
	}
	if len(doc.Content) == 0 {
		return nil, &ConfigError{Problems: []string{file + ":1: the file is empty; it needs at least routes:"}}
	}
	r := &nodeReader{file: file, lookup: opts.LookupEnv}
	l := &configLoader{nodeReader: r, dir: filepath.Dir(file), secretKey: opts.SecretKey}
	if l.secretKey == nil {
		if v, ok := opts.LookupEnv(secrets.KeyEnv); ok && v != "" {
			key, err := secrets.ParseKey(v)
			if err != nil {
				return nil, &ConfigError{Problems: []string{fmt.Sprintf("%s: %s: %v", file, secrets.KeyEnv, err)}}
			}
			l.secretKey = key
		}
	}
	cfg := l.load(doc.Content[0])
	if len(r.problems) > 0 {
		return nil, &ConfigError{Problems: r.problems}
	}
	cfg.File = file
	return cfg, nil
}

func yamlSyntaxProblem(file string, err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
		return fmt.Sprintf("%s:%d: %s", file, line, strings.TrimSpace(strings.SplitN(msg, ":", 2)[1]))
	}
	return fmt.Sprintf("%s: %s", file, msg)
}

type configLoader struct {
	*nodeReader
	dir       string
	secretKey []byte
}

func (l *configLoader) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.dir, p)
}

func (l *configLoader) load(root *yaml.Node) *Config {
	cfg := &Config{Listen: DefaultListen}
	var routesNode *yaml.Node
	seen := l.mapping(root, "", map[string]func(*yaml.Node, string){
		"listen": func(v *yaml.Node, p string) {
			cfg.Listen = l.str(v, p)
			if _, port, err := net.SplitHostPort(cfg.Listen); err != nil || !validPort(port) {
				l.problem(v, p, "%q is not host:port", cfg.Listen)
			}
		},
		"unmatched": func(v *yaml.Node, p string) {
			cfg.RejectUnmatched = l.oneOf(v, p, "forward", "reject") == "reject"
		},
		"mitm":   func(v *yaml.Node, p string) { cfg.CA = l.mitm(v, p) },
		"routes": func(v *yaml.Node, p string) { routesNode = v },
	})
	l.require(root, "", seen, "routes")
	if routesNode == nil {
		return cfg
	}
	if routesNode.Kind != yaml.SequenceNode {
		l.problem(routesNode, "routes", "must be a list of routes")
		return cfg
	}
	names := map[string]int{}
	claimed := map[HostPattern]string{}
	for i, n := range routesNode.Content {
		p := fmt.Sprintf("routes[%d]", i)
		rt := l.route(n, p)
		if rt.Name != "" {
			if first, dup := names[rt.Name]; dup {
				l.problem(n, p+".name", "%q is already the name of routes[%d]", rt.Name, first)
			}
			names[rt.Name] = i
		}
		for j, h := range rt.Hosts {
			if owner, dup := claimed[h]; dup {
				l.problem(n, fmt.Sprintf("%s.hosts[%d]", p, j), "%q is already claimed by route %q", h, owner)
				continue
			}
			claimed[h] = rt.Name
		}
		cfg.Routes = append(cfg.Routes, rt)
	}
	return cfg
}

func (l *configLoader) mitm(n *yaml.Node, path string) *tls.Certificate {
	var certFile, keyFile string
	seen := l.mapping(n, path, map[string]func(*yaml.Node, string){
		"caCert": func(v *yaml.Node, p string) { certFile = l.path(l.str(v, p)) },
		"caKey":  func(v *yaml.Node, p string) { keyFile = l.path(l.str(v, p)) },
	})
	l.require(n, path, seen, "caCert", "caKey")
	if certFile == "" || keyFile == "" {
		return nil
	}
	ca, err := LoadCA(certFile, keyFile)
	if err != nil {
		l.problem(n, path, "%v", err)
		return nil
	}
	return ca
}

// checkEndpointURL insists on https, except for loopback hosts used in local testing.
func checkEndpointURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return errors.New("must be an absolute http(s) URL")
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return fmt.Errorf("must use https (plain http is allowed only for localhost, 127.0.0.0/8 and ::1)")
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

func names[T ~string](vs []T) []string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return s
}
