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

// Route is one supplier: the hosts it covers and how to get its token.
type Route struct {
	Name  string
	Hosts []HostPattern
	Token tokensource.Config
	// Cache reuses one token until shortly before it expires; false fetches one per request.
	Cache bool
	// UpstreamTLS sends the app's plain-http requests upstream over https.
	UpstreamTLS bool
}

// DefaultListen is used when routes.yaml names no listen address.
const DefaultListen = "127.0.0.1:3128"

// ConfigError lists every problem found in a configuration file, one line each.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string { return strings.Join(e.Problems, "\n") }

// LoadConfig reads and validates a routes.yaml, expanding ${VAR} from the environment. Relative paths
// inside it (secret files, CA files) are relative to the file's directory.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Problems: []string{fmt.Sprintf("%s: cannot read: %v", path, unwrapPathError(err))}}
	}
	return ParseConfig(path, data, os.LookupEnv)
}

// ParseConfig validates routes.yaml content; file names it in messages and anchors relative paths.
func ParseConfig(file string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &ConfigError{Problems: []string{yamlSyntaxProblem(file, err)}}
	}
	if len(doc.Content) == 0 {
		return nil, &ConfigError{Problems: []string{file + ":1: the file is empty; it needs at least routes:"}}
	}
	r := &nodeReader{file: file, lookup: lookupEnv}
	l := &configLoader{nodeReader: r, dir: filepath.Dir(file)}
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
	dir string
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

func (l *configLoader) route(n *yaml.Node, path string) *Route {
	rt := &Route{Cache: true}
	tc := &rt.Token
	var secretNode, secretFileNode *yaml.Node
	seen := l.mapping(n, path, map[string]func(*yaml.Node, string){
		"name": func(v *yaml.Node, p string) { rt.Name = l.str(v, p) },
		"hosts": func(v *yaml.Node, p string) {
			l.list(v, p, func(s string, item *yaml.Node, p string) {
				h, err := ParseHostPattern(s)
				if err != nil {
					l.problem(item, p, "%v", err)
					return
				}
				rt.Hosts = append(rt.Hosts, h)
			})
			if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
				l.problem(v, p, "must name at least one host")
			}
		},
		"tokenUrl": func(v *yaml.Node, p string) {
			tc.TokenURL = l.str(v, p)
			if err := checkTokenURL(tc.TokenURL); err != nil {
				l.problem(v, p, "%v", err)
			}
		},
		"clientId":     func(v *yaml.Node, p string) { tc.ClientID = l.str(v, p) },
		"clientSecret": func(v *yaml.Node, p string) { secretNode = v; tc.ClientSecret = l.str(v, p) },
		"clientSecretFile": func(v *yaml.Node, p string) {
			secretFileNode = v
			tc.ClientSecret = l.readSecretFile(v, p, l.path(l.str(v, p)))
		},
		"scope":     func(v *yaml.Node, p string) { tc.Scope = l.str(v, p) },
		"grantType": func(v *yaml.Node, p string) { tc.GrantType = l.str(v, p) },
		"authStyle": func(v *yaml.Node, p string) {
			tc.AuthStyle = tokensource.AuthStyle(l.oneOf(v, p, names(tokensource.AuthStyles)...))
		},
		"requestStyle": func(v *yaml.Node, p string) {
			tc.RequestStyle = tokensource.RequestStyle(l.oneOf(v, p, names(tokensource.RequestStyles)...))
		},
		"tokenPath": func(v *yaml.Node, p string) {
			tc.TokenPath = l.str(v, p)
			if slicesContainsEmpty(strings.Split(tc.TokenPath, ".")) {
				l.problem(v, p, "%q is not a dot path like access_token or data.token", tc.TokenPath)
			}
		},
		"cache":       func(v *yaml.Node, p string) { rt.Cache = l.boolean(v, p) },
		"upstreamTLS": func(v *yaml.Node, p string) { rt.UpstreamTLS = l.boolean(v, p) },
	})
	if n.Kind != yaml.MappingNode {
		return rt
	}
	l.require(n, path, seen, "name", "hosts", "tokenUrl", "clientId")
	switch {
	case secretNode != nil && secretFileNode != nil:
		l.problem(secretFileNode, path+".clientSecretFile", "set clientSecret or clientSecretFile, not both")
	case secretNode == nil && secretFileNode == nil:
		l.problem(n, path+".clientSecret", "required key is missing (or set clientSecretFile)")
	}
	return rt
}

// checkTokenURL insists on https, except for loopback hosts used in local testing.
func checkTokenURL(raw string) error {
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

func slicesContainsEmpty(s []string) bool {
	for _, v := range s {
		if v == "" {
			return true
		}
	}
	return false
}
