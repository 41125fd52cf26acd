package tokensource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Fetcher makes token requests for one Config.
type Fetcher struct {
	cfg    Config
	key    string
	client *http.Client
	clock  Clock
}

// Options are the parts of a Fetcher that tests and the proxy replace; zero values are production defaults.
type Options struct {
	// Transport carries token requests; nil is a transport that never uses HTTP_PROXY (which may point at
	// tokenproxy itself) and verifies certificates against the system roots.
	Transport http.RoundTripper
	Clock     Clock
}

// NewFetcher checks cfg and returns a Fetcher for it.
func NewFetcher(cfg Config, opts Options) (*Fetcher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Transport == nil {
		opts.Transport = defaultTransport
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	client := &http.Client{
		Transport: opts.Transport,
		Timeout:   RequestTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
				return fmt.Errorf("redirect to %s refused: the credentials stay with %s", req.URL.Host, via[0].URL.Host)
			}
			return nil
		},
	}
	return &Fetcher{cfg: cfg, key: cfg.key(), client: client, clock: opts.Clock}, nil
}

var defaultTransport = &http.Transport{
	Proxy:                 nil,
	DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:   5 * time.Second,
	ResponseHeaderTimeout: RequestTimeout,
	MaxIdleConnsPerHost:   4,
	IdleConnTimeout:       90 * time.Second,
	ForceAttemptHTTP2:     true,
}

// Config returns the fetcher's settings with defaults filled in.
func (f *Fetcher) Config() Config { return f.cfg }

// Fetch makes one token request and returns the token, or an *Error.
func (f *Fetcher) Fetch(ctx context.Context) (*Token, error) {
	req, err := newRequest(ctx, f.cfg)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, f.networkError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, f.networkError(err)
	}
	if len(body) > MaxResponseBytes {
		return nil, &Error{Kind: KindTooLarge, TokenURL: displayURL(f.cfg.TokenURL), StatusCode: resp.StatusCode}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, parseErrorAnswer(f.cfg, resp.StatusCode, body)
	}
	return parseAnswer(f.cfg, resp.StatusCode, body, f.clock.Now())
}

func (f *Fetcher) networkError(err error) *Error {
	// *url.Error repeats the URL with its query; keep only the cause.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
	return &Error{Kind: KindNetwork, TokenURL: displayURL(f.cfg.TokenURL), Timeout: timeout, Err: err}
}
