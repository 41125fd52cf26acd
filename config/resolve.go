package config

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"

	"github.com/tokenproxy/tokenproxy/tokensource"
)

// Resolve returns a copy of cfg in which every route configured with issuer: has the token endpoint its
// issuer publishes. The discoveries run concurrently, each bounded by tokensource.RequestTimeout and all by
// ctx; roots verifies the issuers (nil: the system pool). A route whose issuer known (the configuration in
// service, or nil) resolved already keeps that endpoint without asking again, so a reload does not depend
// on issuers that did not change. cfg itself is never changed. Every route that cannot be resolved is one
// line of the returned *Error.
func Resolve(ctx context.Context, cfg *Config, roots *x509.CertPool, known *Config) (*Config, error) {
	out := *cfg
	out.Routes = make([]*Route, len(cfg.Routes))
	problems := make([]string, len(cfg.Routes))
	var wg sync.WaitGroup
	for i, r := range cfg.Routes {
		out.Routes[i] = r
		if r.Issuer == "" || r.Token.TokenURL != "" {
			continue
		}
		if endpoint := known.discovered(r); endpoint != "" {
			resolved := *r
			resolved.Token.TokenURL = endpoint
			out.Routes[i] = &resolved
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resolved, err := resolveIssuer(ctx, r, roots)
			if err != nil {
				problems[i] = fmt.Sprintf("%s.issuer: %v", r.at, err)
				return
			}
			out.Routes[i] = resolved
		}()
	}
	wg.Wait()
	var e Error
	for _, p := range problems {
		if p != "" {
			e.Problems = append(e.Problems, p)
		}
	}
	if len(e.Problems) > 0 {
		return nil, &e
	}
	out.table = newTable(out.Routes)
	return &out, nil
}

// resolveIssuer returns a copy of r with the token endpoint from its issuer's metadata.
func resolveIssuer(ctx context.Context, r *Route, roots *x509.CertPool) (*Route, error) {
	ctx, cancel := context.WithTimeout(ctx, tokensource.RequestTimeout)
	defer cancel()
	mtls := r.Token.AuthStyle == tokensource.AuthTLSClient
	endpoint, err := tokensource.Discover(ctx, r.Issuer, mtls, tokensource.Options{RootCAs: roots})
	if err != nil {
		return nil, err
	}
	if err := CheckEndpointURL(endpoint); err != nil {
		return nil, fmt.Errorf("issuer %s names token_endpoint %s, which %v",
			tokensource.DisplayURL(r.Issuer), tokensource.DisplayURL(endpoint), err)
	}
	resolved := *r
	resolved.Token.TokenURL = endpoint
	return &resolved, nil
}

// discovered returns the token endpoint c resolved for a route with r's name, issuer and mTLS need, or "".
func (c *Config) discovered(r *Route) string {
	if c == nil {
		return ""
	}
	old := c.Route(r.Name)
	if old == nil || old.Issuer != r.Issuer || (old.Token.AuthStyle == tokensource.AuthTLSClient) != (r.Token.AuthStyle == tokensource.AuthTLSClient) {
		return ""
	}
	return old.Token.TokenURL
}
