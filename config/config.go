// Package config reads routes.yaml into an immutable Config: strict validation with file:line messages,
// ${VAR} expansion, host patterns and the route table, and issuer resolution into a resolved copy.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/tokenproxy/tokenproxy/internal/hostname"
	"github.com/tokenproxy/tokenproxy/secrets"
	"github.com/tokenproxy/tokenproxy/tokensource"
	"gopkg.in/yaml.v3"
)

// Config is a loaded, validated routes.yaml. It is never changed after loading: a reload builds a new one.
type Config struct {
	// File is the path the configuration was read from.
	File string
	// Listen is where apps send HTTP_PROXY traffic.
	Listen string
	// Admin is where the admin endpoints listen (/healthz, /readyz, /metrics, /routes); empty: off.
	Admin string
	// RejectUnmatched answers requests to hosts of no route with 403 instead of forwarding them.
	RejectUnmatched bool
	// MITM is the interception CA; nil when routes.yaml has no mitm section.
	MITM *MITM
	// Routes in file order.
	Routes []*Route
	// Clients are the callers allowed when the proxy listens beyond loopback; empty: anyone who reaches it.
	Clients []*Client
	// Store shares tokens with other replicas; nil keeps them in the process.
	Store *Store
	// Limits bound the client connections of a gateway; zero values are the proxy's defaults.
	Limits Limits
	// Sources are the files this configuration was read from, with their content when read, so a reload
	// can tell whether any of them changed.
	Sources []Source

	table *table
}

// MITM is the CA that signs the leaf certificates of intercepted hosts.
type MITM struct {
	CertFile, KeyFile string
	CA                *tls.Certificate
}

// Route is one supplier: the hosts it covers, how to get its token and how to put it on requests.
type Route struct {
	Name  string
	Hosts []HostPattern
	Token tokensource.Config
	// Issuer, when set, names the authorization server whose metadata gives Token.TokenURL (see Resolve).
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

	// at is where the route is in its file ("routes.yaml:12: routes[2]"), for messages after loading.
	at string
}

// Route defaults.
const (
	DefaultHeader         = "Authorization"
	DefaultPrefix         = "Bearer "
	DefaultRetryBodyLimit = 1 << 20
)

// DefaultListen is used when routes.yaml names no listen address.
const DefaultListen = "127.0.0.1:3128"

// Error lists every problem found in a configuration file, one "file:line: key: message" line each.
type Error struct {
	Problems []string
	// Sources are the files read before the problems were found, so a reloader can tell when they change.
	Sources []Source
}

func (e *Error) Error() string { return strings.Join(e.Problems, "\n") }

// LoadOptions are where the loader finds what routes.yaml refers to.
type LoadOptions struct {
	// LookupEnv expands ${VAR}; nil is os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// SecretKey decrypts aes256gcm: secrets; nil reads TOKENPROXY_SECRET_KEY through LookupEnv.
	SecretKey []byte
	// SyntaxOnly checks keys, types and values without the environment and without reading any file:
	// ${VAR} is left as written and values holding one are not checked (validate -syntax-only, for
	// pipelines that hold no secrets).
	SyntaxOnly bool
	// ParseCA reads the mitm: section's CA as the proxy uses it (mitm.ParseCA), and CheckStoreURL a store:
	// URL as the store reads it (redisstore.CheckURL). Those formats belong to the packages that use the
	// sections, which config does not import; a section whose reader is nil is refused.
	ParseCA       func(certPEM, keyPEM []byte) (*tls.Certificate, error)
	CheckStoreURL func(string) error
}

// Load reads and validates a routes.yaml, expanding ${VAR} from the environment. Relative paths inside it
// (secret, key, certificate and CA files) are relative to the file's directory. It never uses the network.
func Load(path string, opts LoadOptions) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Problems: []string{fmt.Sprintf("%s: cannot read: %v", path, unwrapPathError(err))},
			Sources: []Source{missing(path)}}
	}
	return Parse(path, data, opts)
}

// Parse validates routes.yaml content; file names it in messages and anchors relative paths.
func Parse(file string, data []byte, opts LoadOptions) (*Config, error) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	self := []Source{sourceOf(file, data)}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{Problems: []string{yamlSyntaxProblem(file, data, err)}, Sources: self}
	}
	if len(doc.Content) == 0 {
		return nil, &Error{Problems: []string{file + ":1: the file is empty; it needs at least routes:"}, Sources: self}
	}
	r := &nodeReader{file: file, lookup: opts.LookupEnv, syntaxOnly: opts.SyntaxOnly}
	l := &loader{nodeReader: r, dir: filepath.Dir(file), secretKey: opts.SecretKey, parseCA: opts.ParseCA,
		checkStoreURL: opts.CheckStoreURL, sources: self}
	if l.secretKey == nil && !opts.SyntaxOnly {
		if v, ok := opts.LookupEnv(secrets.KeyEnv); ok && v != "" {
			key, err := secrets.ParseKey(v)
			if err != nil {
				return nil, &Error{Problems: []string{fmt.Sprintf("%s: %s: %v", file, secrets.KeyEnv, err)}, Sources: self}
			}
			l.secretKey = key
		}
	}
	cfg := l.load(doc.Content[0])
	if len(r.problems) > 0 {
		return nil, &Error{Problems: r.sortedProblems(), Sources: l.sources}
	}
	cfg.File = file
	cfg.Sources = l.sources
	cfg.table = newTable(cfg.Routes)
	return cfg, nil
}

// Match returns the route of a request's host, or nil. The host is canonical (hostname.Parse), the same
// value the proxy dials: matching never normalises on its own.
func (c *Config) Match(host hostname.Host) *Route {
	return c.table.match(host)
}

// NamesExactly reports whether a route names the host by its name (with its port or none), not through a
// wildcard.
func (c *Config) NamesExactly(host hostname.Host) bool {
	return c.table.exact[hostKey{host.Name(), host.Port()}] != nil || c.table.exact[hostKey{host.Name(), ""}] != nil
}

// MatchString is Match for a host written "name" or "name:port" (defaultPort when it has none); a host
// that has no canonical form matches no route.
func (c *Config) MatchString(hostport, defaultPort string) *Route {
	h, err := hostname.Parse(hostport, defaultPort)
	if err != nil {
		return nil
	}
	return c.table.match(h)
}

// Route returns the route with the given name, or nil.
func (c *Config) Route(name string) *Route {
	for _, r := range c.Routes {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// yamlSyntaxProblem turns a YAML syntax error into a file:line problem. yaml.v3 reports where the construct
// it was reading began, counted from 0 for parser errors; the line that breaks the document is the first
// whose prefix of the file fails with the same message.
func yamlSyntaxProblem(file string, data []byte, err error) string {
	msg := yamlLineRef.ReplaceAllString(err.Error(), "")
	msg = strings.TrimPrefix(msg, "yaml: ")
	lines := strings.SplitAfter(string(data), "\n")
	for k := 1; k <= len(lines); k++ {
		var n yaml.Node
		if perr := yaml.Unmarshal([]byte(strings.Join(lines[:k], "")), &n); perr != nil &&
			strings.TrimPrefix(yamlLineRef.ReplaceAllString(perr.Error(), ""), "yaml: ") == msg {
			return fmt.Sprintf("%s:%d: %s", file, k, msg)
		}
	}
	var line int
	if _, scanErr := fmt.Sscanf(err.Error(), "yaml: line %d:", &line); scanErr == nil {
		return fmt.Sprintf("%s:%d: %s", file, line, msg)
	}
	return fmt.Sprintf("%s: %s", file, msg)
}

var yamlLineRef = regexp.MustCompile(`^yaml: line \d+: `)

type loader struct {
	*nodeReader
	dir           string
	secretKey     []byte
	parseCA       func(certPEM, keyPEM []byte) (*tls.Certificate, error)
	checkStoreURL func(string) error
	sources       []Source
	pendingRoutes []pendingRoute // route names that clients list
}

func (l *loader) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.dir, p)
}

// readFile reads a file routes.yaml refers to and remembers it as a source of the configuration (also
// when it cannot be read, so a reload notices when it appears). With SyntaxOnly it reads nothing.
func (l *loader) readFile(n *yaml.Node, path, file string) ([]byte, bool) {
	if l.syntaxOnly || file == "" { // an empty name was reported already
		return nil, false
	}
	b, err := os.ReadFile(file)
	if err != nil {
		l.sources = append(l.sources, missing(file))
		l.problem(n, path, "cannot read %s: %v", file, unwrapPathError(err))
		return nil, false
	}
	l.sources = append(l.sources, sourceOf(file, b))
	return b, true
}

// fileName reads the name of a file, relative to routes.yaml; an empty one is a problem.
func (l *loader) fileName(n *yaml.Node, path string) string {
	name := l.nonEmpty(n, path)
	if name == "" {
		return ""
	}
	return l.path(name)
}

// readSecretFile reads a secret file with its trailing newline trimmed.
func (l *loader) readSecretFile(n *yaml.Node, path, file string) string {
	b, ok := l.readFile(n, path, file)
	if !ok {
		return ""
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		l.problem(n, path, "%s is empty", file)
	}
	return s
}

func (l *loader) load(root *yaml.Node) *Config {
	cfg := &Config{Listen: DefaultListen}
	var routesNode, listenNode *yaml.Node
	defer func() { l.checkClients(cfg, listenNode) }()
	seen := l.mapping(root, "", map[string]func(*yaml.Node, string){
		"listen":  func(v *yaml.Node, p string) { listenNode, cfg.Listen = v, l.hostPort(v, p) },
		"clients": func(v *yaml.Node, p string) { cfg.Clients = l.clients(v, p) },
		"admin":   func(v *yaml.Node, p string) { cfg.Admin = l.hostPort(v, p) },
		"unmatched": func(v *yaml.Node, p string) {
			cfg.RejectUnmatched = l.oneOf(v, p, "forward", "reject") == "reject"
		},
		"mitm":   func(v *yaml.Node, p string) { cfg.MITM = l.mitm(v, p) },
		"store":  func(v *yaml.Node, p string) { cfg.Store = l.store(v, p) },
		"limits": func(v *yaml.Node, p string) { cfg.Limits = l.limits(v, p) },
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

// hostPort reads a listen address.
func (l *loader) hostPort(v *yaml.Node, p string) string {
	s := l.str(v, p)
	if l.opaque(v) {
		return s
	}
	if _, port, err := net.SplitHostPort(s); err != nil || !validPort(port) {
		l.problem(v, p, "%q is not host:port", v.Value)
	}
	return s
}

func (l *loader) mitm(n *yaml.Node, path string) *MITM {
	m := &MITM{}
	var certNode, keyNode *yaml.Node
	seen := l.mapping(n, path, map[string]func(*yaml.Node, string){
		"caCert": func(v *yaml.Node, p string) { certNode, m.CertFile = v, l.fileName(v, p) },
		"caKey":  func(v *yaml.Node, p string) { keyNode, m.KeyFile = v, l.fileName(v, p) },
	})
	l.require(n, path, seen, "caCert", "caKey")
	// Each file that is named is read, so every problem is reported at once.
	certPEM, ok1 := l.readFile(certNode, path+".caCert", m.CertFile)
	keyPEM, ok2 := l.readFile(keyNode, path+".caKey", m.KeyFile)
	if !ok1 || !ok2 {
		return nil
	}
	if l.parseCA == nil {
		l.problem(n, path, "this program reads no interception CA (config.LoadOptions.ParseCA is not set)")
		return nil
	}
	ca, err := l.parseCA(certPEM, keyPEM)
	if err != nil {
		l.problem(n, path, "CA %s / %s: %v", m.CertFile, m.KeyFile, err)
		return nil
	}
	m.CA = ca
	return m
}

// CheckEndpointURL insists on an absolute https URL, except for loopback hosts used in local testing.
func CheckEndpointURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return errors.New("must be an absolute http(s) URL")
	}
	if u.Scheme == "http" && !IsLoopback(u.Hostname()) {
		return fmt.Errorf("must use https (plain http is allowed only for localhost, 127.0.0.0/8 and ::1)")
	}
	return nil
}

// IsLoopback reports whether host is localhost or a loopback IP address.
func IsLoopback(host string) bool {
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

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// ReadAdmin returns the admin address a routes.yaml names, with ${VAR} expanded, without loading or checking
// the rest: tokenproxy health needs nothing else, and no secret. lookup nil is os.LookupEnv.
func ReadAdmin(path string, lookup func(string) (string, bool)) (string, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: cannot read: %v", path, unwrapPathError(err))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", errors.New(yamlSyntaxProblem(path, data, err))
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return "", fmt.Errorf("%s: not a routes file", path)
	}
	root := doc.Content[0]
	r := &nodeReader{file: path, lookup: lookup}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "admin" {
			addr := r.str(root.Content[i+1], "admin")
			if len(r.problems) > 0 {
				return "", errors.New(strings.Join(r.problems, "\n"))
			}
			return addr, nil
		}
	}
	return "", fmt.Errorf("%s names no admin address; add admin: host:port for the health and metrics endpoints", path)
}
