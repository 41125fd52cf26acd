// Package tokensource gets OAuth 2.0 client-credentials access tokens (RFC 6749 §4.4) from one token
// endpoint in the style that endpoint wants, and caches them until shortly before they expire.
package tokensource

import (
	"fmt"
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
	// RequestTimeout bounds one token request, connection to last byte.
	RequestTimeout = 10 * time.Second
	// MaxResponseBytes caps the token endpoint's answer.
	MaxResponseBytes = 1 << 20
)

// AuthStyles and RequestStyles list the accepted values, for validation messages.
var (
	AuthStyles    = []AuthStyle{AuthBasicHeader, AuthBody}
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
	case !valid(c.AuthStyle, AuthStyles):
		return fmt.Errorf("tokensource: authStyle %q is not one of %s", c.AuthStyle, join(AuthStyles))
	case !valid(c.RequestStyle, RequestStyles):
		return fmt.Errorf("tokensource: requestStyle %q is not one of %s", c.RequestStyle, join(RequestStyles))
	}
	for _, seg := range strings.Split(c.TokenPath, ".") {
		if seg == "" {
			return fmt.Errorf("tokensource: tokenPath %q has an empty segment", c.TokenPath)
		}
	}
	return nil
}

// key identifies the credentials a token was issued for: configs with equal keys may share one token.
func (c Config) key() string {
	c = c.withDefaults()
	return strings.Join([]string{c.TokenURL, c.ClientID, c.GrantType, c.Scope, string(c.AuthStyle)}, "\x00")
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
