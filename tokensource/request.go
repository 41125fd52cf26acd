package tokensource

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// newRequest builds the token request in the config's authStyle and requestStyle.
func newRequest(ctx context.Context, c Config) (*http.Request, error) {
	fields := []field{{"grant_type", c.GrantType}}
	if c.Scope != "" {
		fields = append(fields, field{"scope", c.Scope})
	}
	if c.AuthStyle == AuthBody {
		fields = append(fields, field{"client_id", c.ClientID}, field{"client_secret", c.ClientSecret})
	}

	var body []byte
	var contentType string
	switch c.RequestStyle {
	case RequestJSON:
		obj := make(map[string]string, len(fields))
		for _, f := range fields {
			obj[f.name] = f.value
		}
		var err error
		if body, err = json.Marshal(obj); err != nil {
			return nil, fmt.Errorf("tokensource: encoding the token request: %w", err)
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

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.TokenURL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("tokensource: tokenUrl %s: %w", displayURL(c.TokenURL), err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "tokenproxy")
	if c.AuthStyle == AuthBasicHeader {
		// RFC 6749 §2.3.1: each part is form-url-encoded before Basic encoding.
		req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret))
	}
	return req, nil
}

type field struct{ name, value string }
