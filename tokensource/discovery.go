package tokensource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// wellKnown are the metadata documents tried in order: RFC 8414, then OpenID Connect Discovery.
var wellKnown = []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"}

// Discover returns the token endpoint an issuer publishes in its metadata (RFC 8414 §3, else OpenID
// Connect Discovery). The error says what each document answered.
func Discover(ctx context.Context, issuer string, opts Options) (string, error) {
	client := &http.Client{Transport: newTransport(opts.RootCAs, nil), Timeout: RequestTimeout}
	base := strings.TrimSuffix(issuer, "/")
	var tried []string
	for _, path := range wellKnown {
		endpoint, err := tokenEndpointFrom(ctx, client, base+path)
		if err == nil {
			return endpoint, nil
		}
		tried = append(tried, fmt.Sprintf("%s: %v", displayURL(base+path), err))
	}
	return "", fmt.Errorf("tokensource: issuer %s publishes no token endpoint (%s)", displayURL(issuer), strings.Join(tried, "; "))
}

func tokenEndpointFrom(ctx context.Context, client *http.Client, docURL string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, docURL, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("answered %d", resp.StatusCode)
	}
	var meta struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxResponseBytes)).Decode(&meta); err != nil {
		return "", errors.New("not a JSON metadata document")
	}
	if meta.TokenEndpoint == "" {
		return "", errors.New("has no token_endpoint")
	}
	return meta.TokenEndpoint, nil
}
