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

// Discover returns the token endpoint an issuer publishes in its metadata: RFC 8414 (the well-known path
// inserted between host and the issuer's path), then OpenID Connect Discovery (appended to the issuer),
// then the appended RFC 8414 form some servers use. A document naming another issuer is not believed
// (RFC 8414 §3.3). With mtls set (tls-client-auth), the mtls_endpoint_aliases token endpoint wins
// (RFC 8705 §5). The error says what each document answered.
func Discover(ctx context.Context, issuer string, mtls bool, opts Options) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("tokensource: issuer %q is not an absolute URL", DisplayURL(issuer))
	}
	client := &http.Client{Transport: newTransport(opts.RootCAs, nil), Timeout: timeoutOf(opts)}
	path := strings.TrimSuffix(u.Path, "/")
	origin := u.Scheme + "://" + u.Host
	docs := []string{
		origin + "/.well-known/oauth-authorization-server" + path,
		origin + path + "/.well-known/openid-configuration",
	}
	if path != "" {
		docs = append(docs, origin+path+"/.well-known/oauth-authorization-server")
	}
	var tried []string
	for _, doc := range docs {
		endpoint, err := tokenEndpointFrom(ctx, client, doc, issuer, mtls)
		if err == nil {
			return endpoint, nil
		}
		tried = append(tried, fmt.Sprintf("%s: %v", DisplayURL(doc), err))
	}
	return "", fmt.Errorf("tokensource: issuer %s publishes no token endpoint (%s)", DisplayURL(issuer), strings.Join(tried, "; "))
}

func tokenEndpointFrom(ctx context.Context, client *http.Client, docURL, issuer string, mtls bool) (string, error) {
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
		// Go quotes what a broken server sent: shown by the rules of a token endpoint's answer.
		return "", errors.New((*filter)(nil).text(err.Error(), maxDescription, false, req.URL.Host, req.URL.Hostname()))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("answered %d", resp.StatusCode)
	}
	var meta struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
		MTLSAliases   struct {
			TokenEndpoint string `json:"token_endpoint"`
		} `json:"mtls_endpoint_aliases"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxResponseBytes)).Decode(&meta); err != nil {
		return "", errors.New("not a JSON metadata document")
	}
	if meta.Issuer != "" && strings.TrimSuffix(meta.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
		named := (*filter)(nil).shownURI(meta.Issuer)
		if named == "" {
			named = "another one"
		}
		return "", fmt.Errorf("names issuer %s, not %s", named, DisplayURL(issuer))
	}
	if mtls && meta.MTLSAliases.TokenEndpoint != "" {
		return meta.MTLSAliases.TokenEndpoint, nil
	}
	if meta.TokenEndpoint == "" {
		return "", errors.New("has no token_endpoint")
	}
	return meta.TokenEndpoint, nil
}
