// Package tokensource gets OAuth 2.0 client-credentials access tokens (RFC 6749 §4.4) from one token
// endpoint in the style that endpoint wants, and caches them until shortly before they expire.
package tokensource

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"
)

// AuthStyle says how the client id and secret reach the token endpoint.
type AuthStyle string

const (
	// AuthBasicHeader sends the form-url-encoded client id and secret as HTTP Basic (RFC 6749 §2.3.1).
	AuthBasicHeader AuthStyle = "basic-header"
	// AuthBody sends client_id and client_secret as fields of the request body.
	AuthBody AuthStyle = "body"
	// AuthAuto tries basic-header, falls back to body when the endpoint rejects the client, and remembers
	// which worked.
	AuthAuto AuthStyle = "auto"
	// AuthPrivateKeyJWT sends a client_assertion JWT signed with the client's private key (RFC 7523 §2.2).
	AuthPrivateKeyJWT AuthStyle = "private-key-jwt"
	// AuthClientSecretJWT sends a client_assertion JWT signed HS256 with the client secret.
	AuthClientSecretJWT AuthStyle = "client-secret-jwt"
	// AuthTLSClient presents the client certificate to the token endpoint (RFC 8705 §2).
	AuthTLSClient AuthStyle = "tls-client-auth"
)

// RequestStyle says how the token request body is encoded.
type RequestStyle string

const (
	// RequestForm encodes the body as application/x-www-form-urlencoded (RFC 6749 §4.4.2).
	RequestForm RequestStyle = "form"
	// RequestJSON encodes the same fields as one application/json object.
	RequestJSON RequestStyle = "json"
)

// Defaults applied by Config.withDefaults.
const (
	DefaultGrantType = "client_credentials"
	DefaultTokenPath = "access_token"
	// DefaultLifetime is how long a token whose answer names no lifetime is reused.
	DefaultLifetime = 5 * time.Minute
	// MinLifetime and MaxLifetime clamp every lifetime, so a 0, negative or absurd value neither fetches a
	// token per request nor keeps one forever.
	MinLifetime = 5 * time.Second
	MaxLifetime = 24 * time.Hour
	// RequestTimeout bounds one token request, connection to last byte.
	RequestTimeout = 10 * time.Second
	// MaxResponseBytes caps the token endpoint's answer.
	MaxResponseBytes = 1 << 20
)

// AuthStyles and RequestStyles list the accepted values, for validation messages.
var (
	AuthStyles    = []AuthStyle{AuthBasicHeader, AuthBody, AuthAuto, AuthPrivateKeyJWT, AuthClientSecretJWT, AuthTLSClient}
	RequestStyles = []RequestStyle{RequestForm, RequestJSON}
)

// Config is one route's token settings, as written in routes.yaml.
type Config struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scope        string // space-separated; omitted from the request when empty
	GrantType    string
	AuthStyle    AuthStyle
	RequestStyle RequestStyle
	TokenPath    string // dot path into the JSON answer, e.g. data.token

	// ClientKey signs private-key-jwt assertions (RSA: RS256, EC P-256: ES256) and, with ClientCert,
	// authenticates tls-client-auth.
	ClientKey   crypto.Signer
	ClientKeyID string // the assertion's kid header, when set
	ClientCert  *tls.Certificate

	// Params are extra token-request fields (audience, resource, ...); TokenHeaders extra headers.
	Params       map[string]string
	TokenHeaders map[string]string

	// ExpiresPath (seconds) and ExpiresAtPath (epoch seconds or RFC 3339) are dot paths to the lifetime;
	// DefaultTTL applies when the answer gives none.
	ExpiresPath   string
	ExpiresAtPath string
	DefaultTTL    time.Duration

	// Sensitive are more values never to show when the endpoint echoes them (the route's API keys); they
	// are not part of the credentials' identity.
	Sensitive []string
}

// withDefaults fills every empty field that has a default.
func (c Config) withDefaults() Config {
	if c.GrantType == "" {
		c.GrantType = DefaultGrantType
	}
	if c.AuthStyle == "" {
		c.AuthStyle = AuthBasicHeader
	}
	if c.RequestStyle == "" {
		c.RequestStyle = RequestForm
	}
	if c.TokenPath == "" {
		c.TokenPath = DefaultTokenPath
	}
	return c
}

// Validate reports the first setting that cannot work; the proxy's loader checks the same with line numbers.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.TokenURL == "":
		return fmt.Errorf("tokensource: tokenUrl is required")
	case c.ClientID == "":
		return fmt.Errorf("tokensource: clientId is required")
	case c.AuthStyle == AuthPrivateKeyJWT && c.ClientKey == nil:
		return fmt.Errorf("tokensource: authStyle private-key-jwt needs a client key")
	case c.AuthStyle == AuthPrivateKeyJWT && signingMethod(c.ClientKey) == "":
		return fmt.Errorf("tokensource: the client key must be RSA or EC P-256")
	case c.AuthStyle == AuthTLSClient && c.ClientCert == nil:
		return fmt.Errorf("tokensource: authStyle tls-client-auth needs a client certificate and key")
	case usesSecret(c.AuthStyle) && c.ClientSecret == "":
		return fmt.Errorf("tokensource: authStyle %s needs a client secret", c.AuthStyle)
	case !valid(c.AuthStyle, AuthStyles):
		return fmt.Errorf("tokensource: authStyle %q is not one of %s", c.AuthStyle, join(AuthStyles))
	case !valid(c.RequestStyle, RequestStyles):
		return fmt.Errorf("tokensource: requestStyle %q is not one of %s", c.RequestStyle, join(RequestStyles))
	}
	for name := range c.Params {
		if why, ok := ReservedParam(name); ok {
			return fmt.Errorf("tokensource: params may not set %s: %s", name, why)
		}
	}
	for _, p := range []struct{ name, path string }{{"tokenPath", c.TokenPath}, {"expiresPath", c.ExpiresPath}, {"expiresAtPath", c.ExpiresAtPath}} {
		if p.path != "" && !ValidPath(p.path) {
			return fmt.Errorf("tokensource: %s %q is not a dot path like access_token or data.token", p.name, p.path)
		}
	}
	return nil
}

// ValidPath reports whether p is a dot path without empty segments.
func ValidPath(p string) bool {
	for _, seg := range strings.Split(p, ".") {
		if seg == "" {
			return false
		}
	}
	return true
}

// usesSecret reports whether the style sends or signs with the client secret.
func usesSecret(s AuthStyle) bool {
	return s == AuthBasicHeader || s == AuthBody || s == AuthAuto || s == AuthClientSecretJWT
}

// NeedsSecret reports whether a client secret must be configured for the style.
func (s AuthStyle) NeedsSecret() bool { return usesSecret(s) || s == "" }

// signingMethod names the JWS algorithm for a private key, or "" when the key is not supported.
func signingMethod(k crypto.Signer) string {
	switch key := k.(type) {
	case *rsa.PrivateKey:
		return "RS256"
	case *ecdsa.PrivateKey:
		if key.Curve == elliptic.P256() {
			return "ES256"
		}
	}
	return ""
}

// key identifies the credentials a token was issued for: configs with equal keys share one token. Beyond
// (tokenUrl, clientId, grantType, scope, params, authStyle) it covers everything else that changes what is
// asked or how the answer is read, and a hash of the secret and key, so a route with a wrong secret never
// rides on another route's token.
func (c Config) key() string {
	c = c.withDefaults()
	h := sha256.New()
	put := func(parts ...string) {
		for _, p := range parts {
			fmt.Fprintf(h, "%d:%s;", len(p), p)
		}
	}
	put(c.TokenURL, c.ClientID, c.GrantType, c.Scope, string(c.AuthStyle), string(c.RequestStyle), c.TokenPath,
		c.ExpiresPath, c.ExpiresAtPath, c.DefaultTTL.String(), c.ClientSecret, c.ClientKeyID)
	for _, m := range []map[string]string{c.Params, c.TokenHeaders} {
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		sort.Strings(names)
		put(fmt.Sprint(len(names)))
		for _, k := range names {
			put(k, m[k])
		}
	}
	if c.ClientKey != nil {
		if der, err := x509.MarshalPKIXPublicKey(c.ClientKey.Public()); err == nil {
			put(string(der))
		}
	}
	if c.ClientCert != nil && len(c.ClientCert.Certificate) > 0 {
		put(string(c.ClientCert.Certificate[0]))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func valid[T ~string](v T, allowed []T) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

func join[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, " | ")
}
