package tokensource

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// assertionType is the client_assertion_type of RFC 7523 §2.2.
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// reservedParams are the token-request fields tokenproxy sends itself, in some auth style or grant, each
// with where it comes from: params may not set them, or a route could send another client, secret or grant
// than its settings say (golang.org/x/oauth2's clientcredentials refuses the same: "cannot overwrite").
var reservedParams = map[string]string{
	"grant_type":            "tokenproxy sends it from grantType",
	"client_id":             "tokenproxy sends it from clientId",
	"client_secret":         "tokenproxy sends it from clientSecret or clientSecretFile",
	"client_assertion":      "tokenproxy sends it with authStyle private-key-jwt or client-secret-jwt",
	"client_assertion_type": "tokenproxy sends it with authStyle private-key-jwt or client-secret-jwt",
	"scope":                 "tokenproxy sends it from scope",
	"assertion":             "it is reserved for the jwt-bearer grant (RFC 7523)",
	"subject_token":         "it is reserved for the token-exchange grant (RFC 8693)",
	"subject_token_type":    "it is reserved for the token-exchange grant (RFC 8693)",
	"actor_token":           "it is reserved for the token-exchange grant (RFC 8693)",
	"actor_token_type":      "it is reserved for the token-exchange grant (RFC 8693)",
	"requested_token_type":  "it is reserved for the token-exchange grant (RFC 8693)",
}

// ReservedParam says why params may not set a field, and whether it is reserved. Names are compared
// without case: no supplier is owed a Client_Secret beside the client_secret tokenproxy sends.
func ReservedParam(name string) (why string, reserved bool) {
	why, reserved = reservedParams[strings.ToLower(name)]
	return why, reserved
}

// sentRequest is what a token request carried beyond the route's settings, never to be shown from an answer.
type sentRequest struct {
	body      string
	assertion string // the client assertion, if any
}

// newRequest builds the token request in the given authStyle and the config's requestStyle.
func newRequest(ctx context.Context, c Config, style AuthStyle, now time.Time) (req *http.Request, sent sentRequest, err error) {
	var assertion string
	fields := []field{{"grant_type", c.GrantType}}
	if c.Scope != "" {
		fields = append(fields, field{"scope", c.Scope})
	}
	switch style {
	case AuthBody:
		fields = append(fields, field{"client_id", c.ClientID}, field{"client_secret", c.ClientSecret})
	case AuthTLSClient:
		fields = append(fields, field{"client_id", c.ClientID})
	case AuthPrivateKeyJWT, AuthClientSecretJWT:
		assertion, err = clientAssertion(c, style, now)
		if err != nil {
			return nil, sentRequest{}, err
		}
		fields = append(fields, field{"client_id", c.ClientID},
			field{"client_assertion_type", assertionType}, field{"client_assertion", assertion})
	}
	names := make([]string, 0, len(c.Params))
	for k := range c.Params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fields = append(fields, field{k, c.Params[k]})
	}

	var body []byte
	var contentType string
	switch c.RequestStyle {
	case RequestJSON:
		obj := make(map[string]string, len(fields))
		for _, f := range fields {
			obj[f.name] = f.value
		}
		if body, err = json.Marshal(obj); err != nil {
			return nil, sentRequest{}, fmt.Errorf("tokensource: encoding the token request: %w", err)
		}
		contentType = "application/json"
	default:
		form := url.Values{}
		for _, f := range fields {
			form.Set(f.name, f.value)
		}
		body = []byte(form.Encode())
		contentType = "application/x-www-form-urlencoded"
	}

	req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.TokenURL, bytes.NewReader(body))
	if err != nil {
		return nil, sentRequest{}, fmt.Errorf("tokensource: tokenUrl %s: %w", DisplayURL(c.TokenURL), err)
	}
	for k, v := range c.TokenHeaders {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "tokenproxy")
	}
	if style == AuthBasicHeader {
		// RFC 6749 §2.3.1: each part is form-url-encoded before Basic encoding.
		req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret))
	}
	return req, sentRequest{body: string(body), assertion: assertion}, nil
}

type field struct{ name, value string }
