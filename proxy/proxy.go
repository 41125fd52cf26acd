// Package proxy is tokenproxy's forward proxy: routes.yaml, host matching, plain and intercepted
// requests through goproxy, header rewriting, the upstream transport and error responses.
package proxy

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// Options are the parts of a Server that tests replace; zero values are production defaults.
type Options struct {
	Logger *slog.Logger
	// DialContext dials upstreams and tunnels; tests map names such as supplier.test:443 to loopback.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// RootCAs verifies upstream certificates; nil is the system pool (which honours SSL_CERT_FILE).
	RootCAs *x509.CertPool
	// TokenRootCAs verifies token endpoints; nil is the system pool.
	TokenRootCAs *x509.CertPool
	Clock        tokensource.Clock
	// ResponseHeaderTimeout bounds the wait for an upstream's answer; zero is the default below.
	ResponseHeaderTimeout time.Duration
	// ReadHeaderTimeout and ClientIdleTimeout bound slow and silent clients; zero is the default below.
	ReadHeaderTimeout time.Duration
	ClientIdleTimeout time.Duration
}

// Timeouts of the upstream leg and of hijacked client connections.
const (
	DialTimeout           = 10 * time.Second
	TLSHandshakeTimeout   = 10 * time.Second
	ResponseHeaderTimeout = 60 * time.Second
	ReadHeaderTimeout     = 10 * time.Second
	ClientIdleTimeout     = 5 * time.Minute
	IdleConnsPerHost      = 128
)

// Server is a running configuration: routes, token fetchers and the goproxy that serves them.
type Server struct {
	cfg      *Config
	routes   *routeTable
	fetchers map[*Route]*tokensource.Fetcher
	cache    *tokensource.Cache
	upstream *http.Transport
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	gp       *goproxy.ProxyHttpServer
	// intercept is the CONNECT action for route hosts; nil without a mitm section.
	intercept *goproxy.ConnectAction
	log       *slog.Logger

	http     *http.Server
	conns    *connTracker
	inflight atomic.Int64 // requests not yet answered; net/http does not count intercepted ones
	draining atomic.Bool  // Shutdown has begun: intercepted connections close after their answer
}

// New builds a Server for cfg.
func New(cfg *Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ResponseHeaderTimeout == 0 {
		opts.ResponseHeaderTimeout = ResponseHeaderTimeout
	}
	if opts.ReadHeaderTimeout == 0 {
		opts.ReadHeaderTimeout = ReadHeaderTimeout
	}
	if opts.ClientIdleTimeout == 0 {
		opts.ClientIdleTimeout = ClientIdleTimeout
	}
	if opts.DialContext == nil {
		opts.DialContext = (&net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	s := &Server{
		cfg:      cfg,
		routes:   newRouteTable(cfg.Routes),
		fetchers: map[*Route]*tokensource.Fetcher{},
		cache:    tokensource.NewCache(opts.Clock, opts.Logger),
		dial:     opts.DialContext,
		log:      opts.Logger,
	}
	for _, r := range cfg.Routes {
		f, err := NewFetcher(r, opts)
		if err != nil {
			return nil, err
		}
		s.fetchers[r] = f
	}
	s.upstream = &http.Transport{
		Proxy:                 nil, // never HTTP_PROXY: in a pod it points at this very proxy
		DialContext:           opts.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   TLSHandshakeTimeout,
		ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          4 * IdleConnsPerHost,
		MaxIdleConnsPerHost:   IdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true, // pass the app's Accept-Encoding and the encoded answer through
	}

	gp := goproxy.NewProxyHttpServer()
	gp.Tr = s.upstream
	gp.ConnectDial = nil
	gp.ConnectDialWithReq = s.dialTunnel
	gp.ConnectionErrHandler = s.writeTunnelError
	gp.KeepAcceptEncoding = true
	gp.Logger = goproxyLogger{s.log}
	gp.CertStore = newCertCache(1024)
	gp.NonproxyHandler = http.HandlerFunc(notAProxyRequest)
	if cfg.CA != nil {
		s.intercept = &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: goproxy.TLSConfigFromCA(cfg.CA)}
	}
	gp.OnRequest().HandleConnectFunc(s.onConnect)
	gp.OnRequest().DoFunc(s.onRequest)
	s.gp = gp

	s.conns = newConnTracker(opts.ReadHeaderTimeout, opts.ClientIdleTimeout)
	s.http = &http.Server{
		Handler:           gp,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.ClientIdleTimeout,
		ConnState:         s.conns.connState,
		ConnContext:       s.conns.connContext,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// NewFetcher returns the token fetcher of a route, first finding its token endpoint when it names an issuer.
func NewFetcher(r *Route, opts Options) (*tokensource.Fetcher, error) {
	if err := resolveIssuer(r, opts.TokenRootCAs); err != nil {
		return nil, err
	}
	f, err := tokensource.NewFetcher(r.Token, tokensource.Options{RootCAs: opts.TokenRootCAs, Clock: opts.Clock, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("proxy: route %q: %w", r.Name, err)
	}
	return f, nil
}

// resolveIssuer fills in the token endpoint of a route configured with issuer:, from the issuer's metadata.
func resolveIssuer(r *Route, roots *x509.CertPool) error {
	if r.Issuer == "" || r.Token.TokenURL != "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), tokensource.RequestTimeout)
	defer cancel()
	mtls := r.Token.AuthStyle == tokensource.AuthTLSClient
	endpoint, err := tokensource.Discover(ctx, r.Issuer, mtls, tokensource.Options{RootCAs: roots})
	if err != nil {
		return fmt.Errorf("proxy: route %q: %w", r.Name, err)
	}
	if err := checkEndpointURL(endpoint); err != nil {
		return fmt.Errorf("proxy: route %q: issuer %s names token_endpoint %s, which %v", r.Name,
			tokensource.DisplayURL(r.Issuer), tokensource.DisplayURL(endpoint), err)
	}
	r.Token.TokenURL = endpoint
	return nil
}

// ServeHTTP serves one proxy request (absolute-form or CONNECT).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.gp.ServeHTTP(w, r) }

// Serve accepts proxy connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(trackingListener{Listener: l, t: s.conns})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets requests in flight finish until ctx ends, then closes what is left. It
// returns ctx's error when requests were still running at the deadline.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	err := s.http.Shutdown(ctx) // plain requests; returns once they are done or ctx ends
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for s.inflight.Load() > 0 && ctx.Err() == nil {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	s.conns.closeHijacked()
	s.upstream.CloseIdleConnections()
	if ctx.Err() != nil {
		_ = s.http.Close()
		return ctx.Err()
	}
	return err
}

// Warnings lists what about the configuration works but is probably not what the operator wants.
func (s *Server) Warnings() []string {
	var w []string
	if s.cfg.CA == nil && len(s.cfg.Routes) > 0 {
		w = append(w, "routes.yaml has no mitm section: https:// requests to route hosts (CONNECT) will be refused; "+
			"only plain http:// requests get tokens. Create a CA with `tokenproxy ca -out DIR` and add mitm: {caCert, caKey}")
	}
	if s.cfg.CA != nil {
		if _, isRSA := s.cfg.CA.PrivateKey.(*rsa.PrivateKey); isRSA {
			w = append(w, "the mitm CA has an RSA key: each intercepted host's first certificate takes ~50 ms; an ECDSA CA (tokenproxy ca) takes 0.2 ms")
		}
	}
	return w
}

func notAProxyRequest(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "tokenproxy is a forward proxy: send requests through it with HTTP_PROXY/HTTPS_PROXY, not to it", http.StatusBadRequest)
}

// goproxyLogger sends goproxy's own messages (mostly clients going away) to debug.
type goproxyLogger struct{ log *slog.Logger }

func (l goproxyLogger) Printf(format string, v ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, v...), "component", "goproxy")
	}
}
