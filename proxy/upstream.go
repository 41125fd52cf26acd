package proxy

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// What one answer can make tokenproxy hold from an HTTP/2 upstream: the receive windows it grants. Go's
// defaults (4 MiB a stream, 1 GiB a connection) let an app that reads nothing park 4 MiB per request.
// 128 KiB keeps 250 stalled answers under 100 MB of RSS with the garbage collector's headroom (live heap
// about twice over), and still carries 50 Mbit/s per stream at 20 ms of round trip.
const (
	// UpstreamStreamWindow is the most one answer from an HTTP/2 upstream buffers before its app reads it.
	UpstreamStreamWindow = 128 << 10
	// UpstreamConnWindow is the most one HTTP/2 upstream connection buffers: as many stalled streams as a
	// Go server allows on a connection (250) fit, so stalled streams do not starve the others beside them.
	UpstreamConnWindow = 32 << 20
)

// The two upstream transports: a route's requests, whose hosts the operator named, and those of no route.
// Their connection pools are apart, so a connection dialled for a route's host (which a gateway's guard
// lets reach loopback) never serves a request of no route, also after a reload took the route away.
const (
	forRoutes = iota
	forUnmatched
)

// transports holds the transports requests go upstream with, each replaced whole when it is found broken.
type transports struct {
	build   func(kind int) *http.Transport
	current [2]atomic.Pointer[http.Transport]
	// mu guards the round trips in flight: a list threaded through their exchanges, so tracking one costs
	// no allocation.
	mu        sync.Mutex
	head      *exchange
	stalled   bool // what the last look found, so only a change is logged
	stallTime time.Duration
}

func newTransports(build func(kind int) *http.Transport, stallTimeout time.Duration) *transports {
	u := &transports{build: build, stallTime: stallTimeout}
	for kind := range u.current {
		u.current[kind].Store(build(kind))
	}
	return u
}

// transport is the transport in service for requests of one kind (forRoutes, forUnmatched).
func (u *transports) transport(kind int) *http.Transport { return u.current[kind].Load() }

// closeIdle closes the idle connections of both transports.
func (u *transports) closeIdle() {
	for kind := range u.current {
		u.transport(kind).CloseIdleConnections()
	}
}

// inService reports whether tr is one of the transports in service.
func (u *transports) inService(tr *http.Transport) bool {
	return tr == u.transport(forRoutes) || tr == u.transport(forUnmatched)
}

// replace puts a new transport in service in place of old, unless that was done already. The old one is
// left alone: a connection whose lock a panic left held would block any call on it, closing included.
func (u *transports) replace(old *http.Transport) bool {
	for kind := range u.current {
		if u.current[kind].CompareAndSwap(old, u.build(kind)) {
			return true
		}
	}
	return false
}

// roundTrip sends req with the transport in service for x (a route's or none's), tracked as x's round
// trip while it runs.
func (u *transports) roundTrip(req *http.Request, x *exchange) (*http.Response, error) {
	kind := forUnmatched
	if x.route != nil {
		kind = forRoutes
	}
	tr := u.transport(kind)
	x.rtStart, x.rtTransport = time.Now(), tr
	u.mu.Lock()
	x.rtNext = u.head
	if u.head != nil {
		u.head.rtPrev = x
	}
	u.head = x
	u.mu.Unlock()
	defer u.done(x)
	return tr.RoundTrip(req)
}

func (u *transports) done(x *exchange) {
	u.mu.Lock()
	if x.rtPrev != nil {
		x.rtPrev.rtNext = x.rtNext
	} else {
		u.head = x.rtNext
	}
	if x.rtNext != nil {
		x.rtNext.rtPrev = x.rtPrev
	}
	x.rtPrev, x.rtNext = nil, nil // rtTransport stays: a panic out of the answer's body names the transport to replace
	u.mu.Unlock()
}

// stalledRoundTrips counts the round trips on the transport in service that have waited for their answer
// longer than the upstream timeouts allow, counted from when the request was whole (a slow app's upload
// is no stall of the upstream's), and names the host of the oldest.
func (u *transports) stalledRoundTrips(now time.Time) (n int, host string, waited time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for x := u.head; x != nil; x = x.rtNext {
		if !u.inService(x.rtTransport) {
			continue // a replaced transport's round trips are written off
		}
		since := x.rtStart
		if x.body != nil {
			whole := x.body.wholeAt()
			if whole.IsZero() {
				continue // the app is still sending its body
			}
			if whole.After(since) {
				since = whole
			}
		}
		if d := now.Sub(since); d > u.stallTime {
			n++
			if d > waited {
				host, waited = x.host, d
			}
		}
	}
	return n, host, waited
}

// upstreamTransport builds the transport to upstreams for requests of one kind (forRoutes, forUnmatched).
func (s *Server) upstreamTransport(kind int) *http.Transport {
	dial := s.guard.dialUnmatched
	if kind == forRoutes {
		dial = s.guard.dialRoute
	}
	return &http.Transport{
		Proxy:                 nil, // never HTTP_PROXY: in a pod it points at this very proxy
		DialContext:           dial,
		TLSClientConfig:       &tls.Config{RootCAs: s.opts.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   TLSHandshakeTimeout,
		ResponseHeaderTimeout: s.opts.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          4 * IdleConnsPerHost,
		MaxIdleConnsPerHost:   IdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true, // pass the app's Accept-Encoding and the encoded answer through
		// HTTP/2 with suppliers that offer it: with our own dialer and TLS settings Go asks for it only so.
		ForceAttemptHTTP2: true,
		HTTP2: &http.HTTP2Config{
			MaxReceiveBufferPerStream:     UpstreamStreamWindow,
			MaxReceiveBufferPerConnection: UpstreamConnWindow,
		},
	}
}

// upstreamBroke handles a panic out of the upstream transport's code (golang/go#58456 panics with a
// connection's lock held, so every later request on that connection would hang): the transport is
// replaced, and only the request that met the panic fails.
func (s *Server) upstreamBroke(tr *http.Transport, p any) error {
	if s.up.replace(tr) {
		s.log.Error("the upstream transport failed inside net/http and was replaced; requests on its connections fail",
			"panic", fmt.Sprint(p))
	}
	return fmt.Errorf("proxy: the upstream transport failed: %v", p)
}

// upstreamsStalled reports whether requests to upstreams have stopped completing, logging when that
// changes.
func (s *Server) upstreamsStalled() bool {
	n, host, waited := s.up.stalledRoundTrips(time.Now())
	s.up.mu.Lock()
	changed := (n > 0) != s.up.stalled
	s.up.stalled = n > 0
	s.up.mu.Unlock()
	if changed && n > 0 {
		s.log.Error("not ready: requests to upstreams stopped completing", "stalled", n, "host", host,
			"waited_s", waited.Round(time.Second).Seconds(), "limit_s", s.opts.UpstreamStallTimeout.Seconds())
	} else if changed {
		s.log.Info("ready again: requests to upstreams complete")
	}
	return n > 0
}
