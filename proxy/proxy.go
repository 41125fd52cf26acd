// Package proxy is tokenproxy's forward proxy: the configuration snapshot requests run on, plain and
// intercepted requests through goproxy, CONNECT tunnels, header rewriting, 401 replay, the upstream
// transport, error answers, connection tracking and drain.
package proxy

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// Options are the parts of a Server that tests replace; zero values are production defaults.
type Options struct {
	Logger *slog.Logger
	// Metrics records requests, tokens and connections; nil records nothing.
	Metrics Metrics
	// DialContext dials upstreams and tunnels; tests map names such as supplier.test:443 to loopback.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// RootCAs verifies upstream certificates; nil is the system pool (which honours SSL_CERT_FILE).
	RootCAs *x509.CertPool
	// TokenRootCAs verifies token endpoints; nil is the system pool.
	TokenRootCAs *x509.CertPool
	Clock        tokensource.Clock
	// ResponseHeaderTimeout bounds the wait for an upstream's answer; zero is the default below.
	ResponseHeaderTimeout time.Duration
	// TokenTimeout bounds one token request; zero is tokensource.RequestTimeout.
	TokenTimeout time.Duration
	// ReadHeaderTimeout and ClientIdleTimeout bound slow and silent clients; zero is the default below.
	ReadHeaderTimeout time.Duration
	ClientIdleTimeout time.Duration
	// RequestBodyTimeout is how long an app's request body may make no progress before the request and its
	// connection end; zero is the default below.
	RequestBodyTimeout time.Duration
	// ReplayBudget bounds the request bodies all requests together keep for a replay after a 401; zero is
	// DefaultReplayBudget.
	ReplayBudget int64
	// UpstreamStallTimeout is how long a round trip to an upstream may go unanswered, counted from when its
	// request was whole, before readiness fails; zero is the sum of the upstream timeouts and 30 s.
	UpstreamStallTimeout time.Duration
	// TokenStore keeps tokens where other replicas find them (routes.yaml store:); nil keeps them in the
	// process.
	TokenStore tokensource.Store
}

// Timeouts of the upstream leg and of client connections.
const (
	DialTimeout           = 10 * time.Second
	TLSHandshakeTimeout   = 10 * time.Second
	ResponseHeaderTimeout = 60 * time.Second
	ReadHeaderTimeout     = 10 * time.Second
	ClientIdleTimeout     = 5 * time.Minute
	RequestBodyTimeout    = 30 * time.Second
	IdleConnsPerHost      = 128
	// MaxStreamsPerConn bounds the requests side by side on one intercepted HTTP/2 connection.
	MaxStreamsPerConn = 100
	// MaxHeaderBytes bounds a request's header, which a request holds while it runs (net/http's default,
	// 1 MiB, times 100 streams per connection would be 100 MiB held by one stalled connection).
	MaxHeaderBytes = 64 << 10
	// DefaultReplayBudget bounds the request bodies all requests together keep for a 401 replay.
	DefaultReplayBudget = 64 << 20
)

// Server serves the proxy port with the configuration snapshot currently in service.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics Metrics
	snap    atomic.Pointer[snapshot]
	swapMu  sync.Mutex // one Swap at a time
	cache   *tokensource.Cache
	up      *transports
	guard   *dialGuard
	gp      *goproxy.ProxyHttpServer

	http     *http.Server
	conns    *connTracker
	inflight atomic.Int64 // requests not yet answered, including upgraded ones net/http no longer sees
	// replayHeld is the replay budget the requests in flight hold for their bodies.
	replayHeld atomic.Int64
	listening  atomic.Bool
	gateway    atomic.Bool // it listens beyond loopback
	// lastRefusalLog is when a refused connection was last logged (unix nanos): a flood logs once in a while.
	lastRefusalLog atomic.Int64
	draining       atomic.Bool
	shutdown       sync.Once
	drained        error // Shutdown's result
}

// New builds a Server for cfg, which must be resolved (config.Resolve) when a route names an issuer.
func New(cfg *config.Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = noMetrics{}
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
	if opts.RequestBodyTimeout == 0 {
		opts.RequestBodyTimeout = RequestBodyTimeout
	}
	if opts.ReplayBudget == 0 {
		opts.ReplayBudget = DefaultReplayBudget
	}
	if opts.UpstreamStallTimeout == 0 {
		opts.UpstreamStallTimeout = DialTimeout + TLSHandshakeTimeout + opts.ResponseHeaderTimeout + 30*time.Second
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		metrics: opts.Metrics,
		cache: tokensource.NewCache(tokensource.CacheOptions{Clock: opts.Clock, Logger: opts.Logger, Metrics: opts.Metrics,
			Store: opts.TokenStore}),
	}
	// Every dial, upstream or tunnel, goes through the guard (nil DialContext: the system's dialer).
	s.guard = newDialGuard(s, opts.DialContext)
	snap, err := s.newSnapshot(cfg, nil)
	if err != nil {
		return nil, err
	}
	s.cache.Retain(snap.fetcherList())
	s.snap.Store(snap)
	s.metrics.RoutesInService(snap.routeNames())
	s.up = newTransports(s.upstreamTransport, opts.UpstreamStallTimeout)

	// goproxy is the request engine for plain requests and for the requests inside intercepted
	// connections; CONNECT never reaches it (see connect.go).
	gp := goproxy.NewProxyHttpServer()
	gp.Tr = s.up.transport(forUnmatched) // goproxy's own default reads HTTP_PROXY; this one sends nothing (RoundTrip does)
	gp.ConnectDial = nil
	gp.KeepAcceptEncoding = true
	// onRequest removes the proxy and hop-by-hop headers itself, so goproxy need not (its removal also
	// formats a log line it never prints). Answer headers are handed to the app's answer (see respond), so
	// goproxy's copy must not clear them.
	gp.KeepHeader = true
	gp.KeepDestinationHeaders = true
	gp.Logger = goproxyLogger{s.log}
	gp.NonproxyHandler = http.HandlerFunc(notAProxyRequest)
	gp.OnRequest().DoFunc(s.onRequest)
	s.gp = gp

	s.conns = newConnTracker(opts.ClientIdleTimeout, s.metrics)
	s.http = &http.Server{
		Handler:           s,
		MaxHeaderBytes:    MaxHeaderBytes,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.ClientIdleTimeout,
		ConnState:         s.conns.connState,
		ConnContext:       s.conns.connContext,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Config returns the configuration in service.
func (s *Server) Config() *config.Config { return s.snap.Load().cfg }

// Swap puts a new resolved configuration in service. Requests already running finish on the one they
// started with. Tokens of credentials that did not change are kept; those of credentials no longer in any
// route are dropped and their background refresh stopped. A new CA starts with no leaf certificates.
func (s *Server) Swap(cfg *config.Config) error {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	next, err := s.newSnapshot(cfg, s.snap.Load())
	if err != nil {
		return err
	}
	// The new credentials are in service before any request can run on them.
	s.cache.Retain(next.fetcherList())
	s.snap.Store(next)
	s.metrics.RoutesInService(next.routeNames())
	return nil
}

// ServeHTTP serves one proxy request: CONNECT here, everything else through goproxy.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		s.serveConnect(w, r)
		return
	}
	if b := s.watchBody(w, r); b != nil {
		defer b.end()
	}
	c := connFrom(r.Context())
	if c == nil || r.ProtoMajor != 1 {
		s.gp.ServeHTTP(w, r)
		return
	}
	c.answer = w // one request at a time on an HTTP/1 connection
	defer func() { c.answer = nil }()
	s.gp.ServeHTTP(w, r)
}

// Serve accepts proxy connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.guard.addOwn(l.Addr())
	s.listening.Store(true)
	s.gateway.Store(!isLoopbackAddr(l.Addr()))
	err := s.http.Serve(trackingListener{Listener: l, t: s.conns, limits: s.connLimits, refused: s.connRefused})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ListensAlsoOn tells the proxy of another listener of this process (the admin endpoints): a gateway
// never connects its clients there.
func (s *Server) ListensAlsoOn(a net.Addr) { s.guard.addOwn(a) }

// Draining reports whether a drain has begun (StartDrain or Shutdown).
func (s *Server) Draining() bool { return s.draining.Load() }

// StartDrain marks the proxy as draining, so readiness fails, while it still accepts and serves: load
// balancers stop sending new connections before Shutdown closes the listener.
func (s *Server) StartDrain() { s.draining.Store(true) }

// Shutdown stops accepting, lets requests in flight finish until ctx ends, then closes what is left:
// intercepted connections get "Connection: close" on their next answer, tunnels are closed at the end. It
// returns ctx's error when requests were still running at the deadline. Later calls return the same.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Do(func() { s.drained = s.drain(ctx) })
	return s.drained
}

func (s *Server) drain(ctx context.Context) error {
	s.draining.Store(true)
	var wg sync.WaitGroup
	var plainErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		plainErr = s.http.Shutdown(ctx) // plain requests; returns once they are done or ctx ends
	}()
	for _, srv := range s.conns.interceptServers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.Shutdown(ctx)
		}()
	}
	wg.Wait()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for s.inflight.Load() > 0 && ctx.Err() == nil {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	s.conns.closeAll()
	s.up.closeIdle()
	s.cache.Close()
	if ctx.Err() != nil {
		_ = s.http.Close()
		return ctx.Err()
	}
	return plainErr
}

// Warnings lists what about the configuration in service works but is probably not what the operator wants.
func (s *Server) Warnings() []string {
	cfg := s.Config()
	var w []string
	if cfg.MITM == nil && len(cfg.Routes) > 0 {
		w = append(w, "routes.yaml has no mitm section: https:// requests to route hosts (CONNECT) will be refused; "+
			"only plain http:// requests get tokens. Create a CA with `tokenproxy ca -out DIR` and add mitm: {caCert, caKey}")
	}
	if cfg.MITM != nil {
		if _, isRSA := cfg.MITM.CA.PrivateKey.(*rsa.PrivateKey); isRSA {
			w = append(w, "the mitm CA has an RSA key: signing each intercepted host's certificate takes several times longer than with an ECDSA CA (tokenproxy ca)")
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
