// Package check test-fires routes before traffic depends on them: the token request, then optionally one
// real request to the supplier with the route's settings, each printed as a green or red step.
package check

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/proxy/authheader"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// Options choose what to check and where the output goes.
type Options struct {
	Route string // only this route; empty: every route
	URL   string // also send one GET to this URL with the route's token
	Color bool   // ANSI green and red marks
	// Fetcher builds the token fetcher of a route.
	Fetcher func(*config.Route) (*tokensource.Fetcher, error)
	// Client sends the -url request; it must not use HTTP_PROXY.
	Client *http.Client
}

// Run checks the routes of cfg, writes one line per step to w, and reports whether every step passed.
func Run(ctx context.Context, w io.Writer, cfg *config.Config, o Options) bool {
	p := printer{w: w, color: o.Color}
	routes := cfg.Routes
	if o.Route != "" {
		routes = nil
		for _, r := range cfg.Routes {
			if r.Name == o.Route {
				routes = append(routes, r)
			}
		}
		if len(routes) == 0 {
			p.fail("route %q is not in %s", o.Route, cfg.File)
			return false
		}
	}
	ok, delivered := true, false
	for _, r := range routes {
		fmt.Fprintf(w, "route %s (%s)\n", r.Name, hostList(r))
		tok := tokenStep(ctx, p, r, o)
		if tok == nil {
			ok = false
			continue
		}
		if o.URL == "" {
			continue
		}
		// The token goes only to a URL of the route's own hosts, as the proxy would send it.
		if u, err := url.Parse(o.URL); err != nil || !r.MatchesURL(u) {
			if o.Route != "" {
				p.fail("request: %s is not one of this route's hosts; its token is not sent there", tokensource.DisplayURL(o.URL))
				ok = false
			} else {
				p.line("request: skipped, %s is not one of this route's hosts", tokensource.DisplayURL(o.URL))
			}
			continue
		}
		if requestStep(ctx, p, r, tok, o) {
			delivered = true
		} else {
			ok = false
		}
	}
	if delivered { // the note qualifies a request that passed; after a failure it would read as reassurance
		fmt.Fprintln(w, "note: a 2xx proves connection and token exchange, not that the supplier accepted the content.")
	}
	return ok
}

func tokenStep(ctx context.Context, p printer, r *config.Route, o Options) *tokensource.Token {
	f, err := o.Fetcher(r)
	if err != nil {
		p.fail("token: %v", err)
		return nil
	}
	start := time.Now()
	tok, err := f.Fetch(ctx)
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		te, ok := tokensource.AsError(err)
		if !ok {
			p.fail("token: %v (%s)", err, took)
			return nil
		}
		p.fail("token: token endpoint %s: %s (%s)", te.TokenURL, te.Cause(), took)
		if te.Hint() != "" {
			p.line("  hint: %s", te.Hint())
		}
		return nil
	}
	scope := tok.Scope
	if scope == "" {
		scope = "(not stated)"
	}
	p.pass("token: %s answered %d in %s; token %s, lifetime %s (from %s), scope granted %s",
		tokensource.DisplayURL(f.Config().TokenURL), tok.Status, took, tok.Fingerprint(), tok.Lifetime().Round(time.Second), tok.LifetimeSource, scope)
	if s := f.Detected(); s != "" {
		p.line("  authStyle auto settled on %s", s)
	}
	return tok
}

func requestStep(ctx context.Context, p printer, r *config.Route, tok *tokensource.Token, o Options) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		p.fail("request: %v", err)
		return false
	}
	if r.UpstreamTLS && req.URL.Scheme == "http" {
		req.URL.Scheme = "https"
	}
	authheader.Set(req.Header, r, tok)
	// A redirect would carry the route's token and API keys to whatever host it names: never follow one.
	client := *o.Client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	start := time.Now()
	resp, err := client.Do(req)
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap()
		}
		p.fail("request: GET %s failed after %s: %v", req.URL.Redacted(), took, err)
		p.line("  hint: %s", unreachedHint(err))
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		p.pass("request: GET %s answered %d in %s", req.URL.Redacted(), resp.StatusCode, took)
		return true
	}
	p.fail("request: GET %s answered %d in %s", req.URL.Redacted(), resp.StatusCode, took)
	if loc, err := resp.Location(); err == nil {
		p.line("  redirects to %s; not followed: the route's token goes only to its own hosts. Check the URL.", tokensource.DisplayURL(loc.String()))
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		p.line("  hint: the supplier refused the token; check scope, params (audience/resource) and header/prefix")
	case http.StatusForbidden:
		p.line("  hint: the token is accepted but lacks rights here; check scope")
	}
	return false
}

// unreachedHint says what to look at when the request got no answer: a certificate tokenproxy does not
// accept is a matter of trust or names, not of URLs, DNS and firewalls. Names from the certificate are
// quoted, since the supplier chose them.
func unreachedHint(err error) string {
	var unknown x509.UnknownAuthorityError
	var wrongHost x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		issuer := "an unknown authority"
		if unknown.Cert != nil {
			issuer = strconv.Quote(unknown.Cert.Issuer.String())
		}
		return "the supplier's certificate is issued by " + issuer + ", which this machine's roots do not include: " +
			"if it is a private CA, add its certificate to the file SSL_CERT_FILE names (or a directory in SSL_CERT_DIR) " +
			"for check and for the proxy, else ask the supplier which chain it serves"
	case errors.As(err, &wrongHost):
		return "the supplier's certificate is for " + certNames(wrongHost.Certificate) + ", not " + strconv.Quote(wrongHost.Host) +
			": name the supplier in the URL (and in the route's hosts) by a name its certificate is for"
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			return "a certificate of the supplier's chain has expired or is not valid yet: check this machine's clock, else ask the supplier to renew it"
		}
		return "the supplier's certificate chain is not valid for a TLS server here: ask the supplier which chain it serves"
	}
	return "the supplier could not be reached; check the URL, DNS and firewalls"
}

// certNames lists the names a certificate is valid for, quoted, at most five.
func certNames(c *x509.Certificate) string {
	if c == nil {
		return "other names"
	}
	var names []string
	for _, n := range c.DNSNames {
		names = append(names, strconv.Quote(n))
	}
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	switch {
	case len(names) == 0:
		return "no name (" + strconv.Quote(c.Subject.CommonName) + " as a common name only)"
	case len(names) > 5:
		return strings.Join(names[:5], ", ") + fmt.Sprintf(" and %d more", len(names)-5)
	}
	return strings.Join(names, ", ")
}

func hostList(r *config.Route) string {
	s := make([]string, len(r.Hosts))
	for i, h := range r.Hosts {
		s[i] = h.String()
	}
	return strings.Join(s, ", ")
}

// printer writes marked lines: ✔ in green for a step that passed, ✘ in red for one that failed.
type printer struct {
	w     io.Writer
	color bool
}

func (p printer) pass(format string, a ...any) { p.mark("✔", "\x1b[32m", format, a...) }
func (p printer) fail(format string, a ...any) { p.mark("✘", "\x1b[31m", format, a...) }

func (p printer) mark(sym, color, format string, a ...any) {
	if p.color {
		sym = color + sym + "\x1b[0m"
	}
	fmt.Fprintf(p.w, "  %s %s\n", sym, fmt.Sprintf(format, a...))
}

func (p printer) line(format string, a ...any) { fmt.Fprintf(p.w, "  "+format+"\n", a...) }
