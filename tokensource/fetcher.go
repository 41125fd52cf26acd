package tokensource

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// Fetcher makes token requests for one Config.
type Fetcher struct {
	route   string
	cfg     Config
	secrets []secret // the route's credentials, never shown from what the endpoint answers
	key     string
	client  *http.Client
	clock   Clock
	log     *slog.Logger
	// detected is the style authStyle auto settled on; nil until one worked.
	detected atomic.Pointer[AuthStyle]
	// issued is the last token the endpoint issued, a credential too if a later answer echoes it.
	issued atomic.Pointer[string]
}

// Options are the parts of a Fetcher that tests and the proxy replace; zero values are production defaults.
type Options struct {
	// Route names the route the fetcher serves, in metrics and logs.
	Route string
	// RootCAs verifies token endpoints; nil is the system pool (SSL_CERT_FILE honoured).
	RootCAs *x509.CertPool
	Clock   Clock
	Logger  *slog.Logger
	// Timeout bounds one token request; zero is RequestTimeout.
	Timeout time.Duration
}

func timeoutOf(o Options) time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return RequestTimeout
}

// NewFetcher checks cfg and returns a Fetcher for it. Token requests never use HTTP_PROXY (which may point
// at tokenproxy itself).
func NewFetcher(cfg Config, opts Options) (*Fetcher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	client := &http.Client{
		Transport: newTransport(opts.RootCAs, cfg.ClientCert),
		Timeout:   timeoutOf(opts),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return errors.New("too many redirects")
			}
			if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
				return fmt.Errorf("redirect to %s refused: the credentials stay with %s", req.URL.Host, via[0].URL.Host)
			}
			return nil
		},
	}
	return &Fetcher{route: opts.Route, cfg: cfg, secrets: credentialsOf(cfg), key: cfg.key(), client: client,
		clock: opts.Clock, log: opts.Logger}, nil
}

// maxRedirects is how many same-host redirects a token request follows.
const maxRedirects = 3

// sharedTransport serves every fetcher with the system roots and no client certificate.
var sharedTransport = buildTransport(nil, nil)

// newTransport returns the shared transport, or one of its own when the fetcher has its own trust or
// presents a client certificate (tls-client-auth).
func newTransport(roots *x509.CertPool, cert *tls.Certificate) *http.Transport {
	if roots == nil && cert == nil {
		return sharedTransport
	}
	return buildTransport(roots, cert)
}

func buildTransport(roots *x509.CertPool, cert *tls.Certificate) *http.Transport {
	tlsConfig := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tlsConfig.Certificates = []tls.Certificate{*cert}
	}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: RequestTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// Config returns the fetcher's settings with defaults filled in.
func (f *Fetcher) Config() Config { return f.cfg }

// Route is the name of the route the fetcher serves.
func (f *Fetcher) Route() string { return f.route }

// Serves reports whether the fetcher asks for the same tokens cfg would: same endpoint, credentials,
// request and parsing settings.
func (f *Fetcher) Serves(cfg Config) bool { return cfg.key() == f.key }

// Fetch makes one token request (two while authStyle auto is still finding out) and returns the token,
// or an *Error.
func (f *Fetcher) Fetch(ctx context.Context) (*Token, error) {
	style := f.cfg.AuthStyle
	if style != AuthAuto {
		return f.fetch(ctx, style)
	}
	if known := f.detected.Load(); known != nil {
		return f.fetch(ctx, *known)
	}
	tok, err := f.fetch(ctx, AuthBasicHeader)
	if err == nil {
		f.remember(AuthBasicHeader)
		return tok, nil
	}
	// Only a rejection of the client's credentials says "try the other style"; a 5xx or a timeout says
	// nothing about the style, and asking a down endpoint twice is not gentle.
	if !rejectsClient(err) {
		return nil, err
	}
	tok, err = f.fetch(ctx, AuthBody)
	if err == nil {
		f.remember(AuthBody)
	}
	return tok, err
}

// Detected returns the style authStyle auto settled on, or "" before one worked.
func (f *Fetcher) Detected() AuthStyle {
	if s := f.detected.Load(); s != nil {
		return *s
	}
	return ""
}

func (f *Fetcher) remember(style AuthStyle) {
	if f.detected.CompareAndSwap(nil, &style) {
		f.log.Info("authStyle auto: the token endpoint accepts this style", "tokenUrl", DisplayURL(f.cfg.TokenURL),
			"clientId", f.cfg.ClientID, "authStyle", string(style))
	}
}

func rejectsClient(err error) bool {
	e, ok := AsError(err)
	return ok && e.Kind == KindStatus && (e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusUnauthorized) &&
		(e.Code == "invalid_client" || e.Code == "" && !e.CodeUnregistered)
}

func (f *Fetcher) fetch(ctx context.Context, style AuthStyle) (*Token, error) {
	req, sent, err := newRequest(ctx, f.cfg, style, f.clock.Now())
	if err != nil {
		return nil, err
	}
	creds := f.filter(sent)
	a, err := f.exchange(req, creds)
	if err != nil {
		return f.settle(nil, err, style, creds)
	}
	tok, err := f.read(a, creds)
	return f.settle(tok, err, style, creds)
}

// settle completes a fetch's outcome: an *Error learns the styles and has its texts sealed against every
// credential the request carried; a token is remembered as one.
func (f *Fetcher) settle(tok *Token, err error, style AuthStyle, creds func() *filter) (*Token, error) {
	if e, ok := err.(*Error); ok {
		e.AuthStyle, e.Sent = f.cfg.AuthStyle, style
		e.seal(creds())
	}
	if tok != nil {
		value := tok.Value
		f.issued.Store(&value)
	}
	return tok, err
}

// filter returns, made on first use, the filter of every credential a request carried: the route's, the
// request's body (in its encodings) and client assertion, and the last token issued.
func (f *Fetcher) filter(sent sentRequest) func() *filter {
	var made *filter
	return func() *filter {
		if made == nil {
			all := append(append([]secret(nil), f.secrets...), secret{sent.body, false}, secret{sent.assertion, true})
			if t := f.issued.Load(); t != nil {
				all = append(all, secret{*t, true})
			}
			made = newFilter(all)
		}
		return made
	}
}

// exchange sends the token request and reads the answer.
func (f *Fetcher) exchange(req *http.Request, creds func() *filter) (answer, error) {
	resp, err := f.client.Do(req)
	if err != nil {
		return answer{}, f.networkError(err, creds())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return answer{}, f.networkError(err, creds())
	}
	if len(body) > MaxResponseBytes {
		return answer{}, &Error{Kind: KindTooLarge, TokenURL: DisplayURL(f.cfg.TokenURL), StatusCode: resp.StatusCode}
	}
	return answer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"),
		retryAfter: resp.Header.Get("Retry-After"), body: body}, nil
}

// read turns an answer into a token or an *Error.
func (f *Fetcher) read(a answer, creds func() *filter) (*Token, error) {
	if a.status < 200 || a.status > 299 {
		e := parseErrorAnswer(f.cfg, a, creds())
		e.RetryAfter = retryAfter(a.retryAfter, f.clock.Now())
		return nil, e
	}
	return parseAnswer(f.cfg, a, f.clock.Now(), creds())
}

// retryAfter reads Retry-After as seconds or an HTTP date; 0 when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func (f *Fetcher) networkError(err error, creds *filter) *Error {
	// *url.Error repeats the URL with its query; keep only the cause.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
	// Go's errors quote what a broken endpoint sent (a malformed status line or header, a redirect's host,
	// a certificate's names): the same rules as for a description, the endpoint's own host kept whole.
	var keep []string
	if u, perr := url.Parse(f.cfg.TokenURL); perr == nil && u.Hostname() != "" {
		keep = append(keep, u.Host, u.Hostname())
	}
	return &Error{Kind: KindNetwork, TokenURL: DisplayURL(f.cfg.TokenURL), Timeout: timeout, Err: err,
		Reason: creds.text(err.Error(), maxDescription, false, keep...)}
}
