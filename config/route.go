package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"

	"github.com/tokenproxy/tokenproxy/internal/hopbyhop"
	"github.com/tokenproxy/tokenproxy/internal/hostname"
	"github.com/tokenproxy/tokenproxy/secrets"
	"github.com/tokenproxy/tokenproxy/tokensource"
	"golang.org/x/net/http/httpguts"
	"gopkg.in/yaml.v3"
)

// route reads one entry of routes: and checks what only makes sense across its keys.
func (l *loader) route(n *yaml.Node, path string) *Route {
	rt := &Route{Cache: true, Header: DefaultHeader, Prefix: DefaultPrefix, RetryOn401: true, RetryBodyLimit: DefaultRetryBodyLimit,
		at: fmt.Sprintf("%s:%d: %s", l.file, n.Line, path)}
	tc := &rt.Token
	var secretNode, secretFileNode *yaml.Node
	var keyFile, certFile string
	var keyNode, certNode *yaml.Node
	seen := l.mapping(n, path, map[string]func(*yaml.Node, string){
		"name":  func(v *yaml.Node, p string) { rt.Name = l.nonEmpty(v, p) },
		"hosts": func(v *yaml.Node, p string) { rt.Hosts = l.hosts(v, p) },
		"tokenUrl": func(v *yaml.Node, p string) {
			tc.TokenURL = l.nonEmpty(v, p)
			if err := CheckEndpointURL(tc.TokenURL); err != nil && tc.TokenURL != "" && !l.opaque(v) {
				l.problem(v, p, "%v", err)
			}
		},
		"issuer": func(v *yaml.Node, p string) {
			rt.Issuer = l.nonEmpty(v, p)
			if err := CheckEndpointURL(rt.Issuer); err != nil && rt.Issuer != "" && !l.opaque(v) {
				l.problem(v, p, "%v", err)
			}
		},
		"clientId":     func(v *yaml.Node, p string) { tc.ClientID = l.nonEmpty(v, p) },
		"clientSecret": func(v *yaml.Node, p string) { secretNode = v; tc.ClientSecret = l.nonEmpty(v, p) },
		"clientSecretFile": func(v *yaml.Node, p string) {
			secretFileNode = v
			tc.ClientSecret = l.readSecretFile(v, p, l.fileName(v, p))
		},
		"clientKeyFile":  func(v *yaml.Node, p string) { keyNode, keyFile = v, l.fileName(v, p) },
		"clientKeyId":    func(v *yaml.Node, p string) { tc.ClientKeyID = l.str(v, p) },
		"clientCertFile": func(v *yaml.Node, p string) { certNode, certFile = v, l.fileName(v, p) },
		"scope":          func(v *yaml.Node, p string) { tc.Scope = l.str(v, p) },
		"grantType":      func(v *yaml.Node, p string) { tc.GrantType = l.str(v, p) },
		"authStyle": func(v *yaml.Node, p string) {
			tc.AuthStyle = tokensource.AuthStyle(l.oneOf(v, p, names(tokensource.AuthStyles)...))
		},
		"requestStyle": func(v *yaml.Node, p string) {
			tc.RequestStyle = tokensource.RequestStyle(l.oneOf(v, p, names(tokensource.RequestStyles)...))
		},
		"tokenPath":      func(v *yaml.Node, p string) { tc.TokenPath = l.dotPath(v, p) },
		"expiresPath":    func(v *yaml.Node, p string) { tc.ExpiresPath = l.dotPath(v, p) },
		"expiresAtPath":  func(v *yaml.Node, p string) { tc.ExpiresAtPath = l.dotPath(v, p) },
		"defaultTTL":     func(v *yaml.Node, p string) { tc.DefaultTTL = l.duration(v, p) },
		"params":         func(v *yaml.Node, p string) { tc.Params = l.params(v, p) },
		"tokenHeaders":   func(v *yaml.Node, p string) { tc.TokenHeaders = l.headerMap(v, p) },
		"headers":        func(v *yaml.Node, p string) { rt.Headers = l.headerMap(v, p) },
		"header":         func(v *yaml.Node, p string) { rt.Header = l.headerName(v, p) },
		"prefix":         func(v *yaml.Node, p string) { rt.Prefix = l.str(v, p) },
		"cache":          func(v *yaml.Node, p string) { rt.Cache = l.boolean(v, p) },
		"upstreamTLS":    func(v *yaml.Node, p string) { rt.UpstreamTLS = l.boolean(v, p) },
		"retryOn401":     func(v *yaml.Node, p string) { rt.RetryOn401 = l.boolean(v, p) },
		"retryBodyLimit": func(v *yaml.Node, p string) { rt.RetryBodyLimit = l.size(v, p) },
	})
	if n.Kind != yaml.MappingNode {
		return rt
	}
	l.require(n, path, seen, "name", "hosts", "clientId")
	for _, v := range rt.Headers {
		tc.Sensitive = append(tc.Sensitive, v) // API keys the supplier gets: never shown if the endpoint echoes one
	}
	switch {
	case seen["tokenUrl"] != nil && seen["issuer"] != nil:
		l.problem(seen["issuer"], path+".issuer", "set tokenUrl or issuer, not both")
	case seen["tokenUrl"] == nil && seen["issuer"] == nil && !l.mistyped(n, "tokenUrl", "issuer"):
		l.problem(n, path+".tokenUrl", "required key is missing (or set issuer)")
	}

	style := tc.AuthStyle
	switch {
	case secretNode != nil && secretFileNode != nil:
		l.problem(secretFileNode, path+".clientSecretFile", "set clientSecret or clientSecretFile, not both")
	case secretNode == nil && secretFileNode == nil && style.NeedsSecret() && !l.mistyped(n, "clientSecret", "clientSecretFile"):
		l.problem(n, path+".clientSecret", "required key is missing (or set clientSecretFile)")
	}
	if secrets.IsEncrypted(tc.ClientSecret) && !l.syntaxOnly {
		at, p := secretNode, path+".clientSecret"
		if at == nil {
			at, p = secretFileNode, path+".clientSecretFile"
		}
		plain, err := secrets.Decrypt(l.secretKey, tc.ClientSecret)
		if err != nil {
			l.problem(at, p, "route %q: the encrypted secret %v", rt.Name, describeDecryptError(err))
		}
		tc.ClientSecret = plain
	}

	switch style {
	case tokensource.AuthPrivateKeyJWT:
		if keyNode == nil {
			if !l.mistyped(n, "clientKeyFile") {
				l.problem(n, path+".clientKeyFile", "required for authStyle private-key-jwt")
			}
		} else if keyPEM, ok := l.readFile(keyNode, path+".clientKeyFile", keyFile); ok {
			if key, err := tokensource.ParsePrivateKey(keyPEM); err != nil {
				l.problem(keyNode, path+".clientKeyFile", "%s: %v", keyFile, err)
			} else {
				tc.ClientKey = key
			}
		}
	case tokensource.AuthTLSClient:
		if keyNode == nil || certNode == nil {
			if !l.mistyped(n, "clientCertFile", "clientKeyFile") {
				l.problem(n, path+".clientCertFile", "clientCertFile and clientKeyFile are required for authStyle tls-client-auth")
			}
			break
		}
		certPEM, ok1 := l.readFile(certNode, path+".clientCertFile", certFile)
		keyPEM, ok2 := l.readFile(keyNode, path+".clientKeyFile", keyFile)
		if !ok1 || !ok2 {
			break
		}
		if cert, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			l.problem(certNode, path+".clientCertFile", "cannot load the client certificate and key: %v", err)
		} else {
			tc.ClientCert = &cert
		}
	default:
		if keyNode != nil || certNode != nil {
			at := keyNode
			if at == nil {
				at = certNode
			}
			l.problem(at, path+".authStyle", "clientKeyFile and clientCertFile are used only with private-key-jwt or tls-client-auth")
		}
	}
	return rt
}

func describeDecryptError(err error) string {
	switch {
	case errors.Is(err, secrets.ErrNoKey):
		return "needs a key: set " + secrets.KeyEnv + " or -secret-key-file"
	case errors.Is(err, secrets.ErrWrongKey):
		return "does not decrypt with this key (a different key, or a damaged value)"
	}
	return err.Error()
}

func (l *loader) hosts(v *yaml.Node, p string) []HostPattern {
	var hosts []HostPattern
	l.list(v, p, func(s string, item *yaml.Node, p string) {
		if l.opaque(item) {
			return
		}
		h, err := ParseHostPattern(s)
		if err != nil {
			l.problem(item, p, "%q: %v", item.Value, err)
			return
		}
		hosts = append(hosts, h)
	})
	if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
		l.problem(v, p, "must name at least one host")
	}
	return hosts
}

func (l *loader) dotPath(v *yaml.Node, p string) string {
	s := l.str(v, p)
	if !tokensource.ValidPath(s) && !l.opaque(v) {
		l.problem(v, p, "%q is not a dot path like access_token or data.token", s)
	}
	return s
}

// params reads extra token-request fields; a field tokenproxy sends itself is refused, or the request
// would carry another secret, client or grant than the route's settings say.
func (l *loader) params(v *yaml.Node, p string) map[string]string {
	m := l.stringMap(v, p)
	for i := 0; v.Kind == yaml.MappingNode && i+1 < len(v.Content); i += 2 {
		k := v.Content[i]
		if why, ok := tokensource.ReservedParam(k.Value); ok {
			l.problem(k, p+"."+k.Value, "params may not set %s: %s", k.Value, why)
		}
	}
	return m
}

// headerMap reads header names to values; the names must be valid and never hop-by-hop.
func (l *loader) headerMap(v *yaml.Node, p string) map[string]string {
	m := l.stringMap(v, p)
	for i := 0; v.Kind == yaml.MappingNode && i+1 < len(v.Content); i += 2 {
		l.checkHeaderName(v.Content[i], p+"."+v.Content[i].Value, v.Content[i].Value)
	}
	return m
}

func (l *loader) headerName(v *yaml.Node, p string) string {
	name := l.str(v, p)
	if !l.opaque(v) {
		l.checkHeaderName(v, p, name)
	}
	return name
}

func (l *loader) checkHeaderName(at *yaml.Node, p, name string) {
	if !httpguts.ValidHeaderFieldName(name) {
		l.problem(at, p, "%q is not a valid header name", at.Value)
		return
	}
	if hopbyhop.Is(name) {
		l.problem(at, p, "%q is a hop-by-hop header and is never forwarded", at.Value)
	}
}

// MatchesURL reports whether the URL's host is one of the route's hosts, as the proxy would match it.
func (r *Route) MatchesURL(u *url.URL) bool {
	h, err := hostname.Parse(u.Host, DefaultPort(u.Scheme))
	own := newTable([]*Route{r})
	if err != nil || own.match(h) != r {
		return false
	}
	if r.UpstreamTLS && u.Scheme == "http" {
		return own.match(h.WithPort("443")) == r // sent over https: to port 443 unless the URL names one
	}
	return true
}
