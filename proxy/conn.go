package proxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// connTracker knows every client connection: it counts them by kind, gives connections that net/http
// has handed over (tunnels, upgrades) an idle deadline, and closes what is left at shutdown.
type connTracker struct {
	idle    time.Duration
	metrics Metrics
	mu      sync.Mutex
	conns   map[*trackedConn]struct{}
	from    map[netip.Addr]int        // open connections by source (sourceOf)
	servers map[*http.Server]struct{} // one per intercepted connection
	closing bool                      // closeAll has run: no new intercepted server may start
}

func newConnTracker(idle time.Duration, m Metrics) *connTracker {
	return &connTracker{idle: idle, metrics: m, conns: map[*trackedConn]struct{}{}, from: map[netip.Addr]int{},
		servers: map[*http.Server]struct{}{}}
}

// trackingListener wraps each accepted connection in a trackedConn, and closes at once those over the
// connection limits.
type trackingListener struct {
	net.Listener
	t *connTracker
	// limits are the most connections open at once, in all and from one address; 0 is no limit.
	limits func() (total, perAddress int)
	// refused is told of a connection closed over a limit.
	refused func(reason string, from netip.Addr)
}

// Why a connection was closed as it arrived, as counted in tokenproxy_connections_refused_total.
const (
	refusedTotal      = "total"
	refusedPerAddress = "per-address"
)

func (l trackingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := newTrackedConn(c, l.t.idle, l.t)
		if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
			tc.from = sourceOf(ap.Addr())
		}
		tc.kind.Store(ConnPlain)
		total, perAddress := l.limits()
		if reason := l.t.add(tc, total, perAddress); reason != "" {
			l.refused(reason, tc.from) // counted before the app can see its connection end
			_ = c.Close()
			continue
		}
		l.t.metrics.ConnectionOpened(ConnPlain)
		return tc, nil
	}
}

// add tracks a new connection, unless it is over a limit: then it returns which.
func (t *connTracker) add(tc *trackedConn, total, perAddress int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case total > 0 && len(t.conns) >= total:
		return refusedTotal
	case perAddress > 0 && t.from[tc.from] >= perAddress:
		return refusedPerAddress
	}
	t.conns[tc] = struct{}{}
	t.from[tc.from]++
	tc.counted = true
	return ""
}

type connKey struct{}

// connContext puts the connection into its requests' context, so handlers can reach it, and with it the
// connection's trace (see trackedConn.trace): the plain path serves HTTP/1 only.
func (t *connTracker) connContext(ctx context.Context, c net.Conn) context.Context {
	ctx = context.WithValue(ctx, connKey{}, c)
	if tc, ok := c.(*trackedConn); ok {
		ctx = httptrace.WithClientTrace(ctx, &tc.trace)
	}
	return ctx
}

// connFrom returns the client connection of a request served on the proxy port, or nil.
func connFrom(ctx context.Context) *trackedConn {
	c, _ := ctx.Value(connKey{}).(*trackedConn)
	return c
}

// connState is the http.Server hook: a connection net/http hands over (an upgrade, a CONNECT) lives from
// then on while either direction carries bytes, until the idle timeout. CONNECT handling may change that.
func (t *connTracker) connState(c net.Conn, state http.ConnState) {
	if tc, ok := c.(*trackedConn); ok && state == http.StateHijacked {
		tc.followIdle(true)
	}
}

// addServer registers the server of an intercepted connection, so Shutdown can drain it. It returns false
// once the tracker is closing: the connection is then not served. A connection that starts while the
// proxy drains serves what it was opened for and closes after its first answer.
func (t *connTracker) addServer(srv *http.Server, draining bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	if draining {
		srv.SetKeepAlivesEnabled(false)
	}
	t.servers[srv] = struct{}{}
	return true
}

func (t *connTracker) removeServer(srv *http.Server) {
	t.mu.Lock()
	delete(t.servers, srv)
	t.mu.Unlock()
}

func (t *connTracker) interceptServers() []*http.Server {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*http.Server, 0, len(t.servers))
	for srv := range t.servers {
		out = append(out, srv)
	}
	return out
}

// closeAll closes every connection still open; intercepted connections opened later are not served.
func (t *connTracker) closeAll() {
	t.mu.Lock()
	t.closing = true
	open := make([]*trackedConn, 0, len(t.conns))
	for c := range t.conns {
		open = append(open, c)
	}
	t.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
}

// trackedConn is an accepted client connection. While net/http serves it, net/http manages its deadlines;
// once handed over for a tunnel or an upgrade, every read or write pushes one idle deadline forward, so it
// lives while either side talks.
type trackedConn struct {
	net.Conn
	idleDeadline
	lastWrite atomic.Int64 // unix nanos of the last write deadline set by progress
	t         *connTracker
	from      netip.Addr   // the source address
	counted   bool         // counted in the tracker's connections by address
	kind      atomic.Value // ConnKind
	once      sync.Once
	closed    chan struct{} // closed by Close
	// answer is the app's ResponseWriter while an HTTP/1 request of this connection is served, so the
	// upstream's answer headers can be handed over instead of copied. Only the serving goroutine uses it.
	answer http.ResponseWriter
	// trace is in the context of every request the connection carries over HTTP/1, put there once with
	// the connection instead of into each request's (which costs a context, a copy of the request and a
	// closure). The transport calls it when it has written a request's headers; it tells the exchange
	// whose upstream round trip is under way, sending, which is the only one: HTTP/1 carries one request
	// at a time. A request's token fetch runs in its context too, before its exchange is sending.
	trace   httptrace.ClientTrace
	sending atomic.Pointer[exchange]
}

func newTrackedConn(c net.Conn, idle time.Duration, t *connTracker) *trackedConn {
	tc := &trackedConn{Conn: c, idleDeadline: idleDeadline{idle: idle}, t: t, closed: make(chan struct{})}
	tc.trace.WroteHeaders = tc.wroteHeaders
	return tc
}

func (c *trackedConn) wroteHeaders() {
	if x := c.sending.Load(); x != nil {
		x.wroteHeaders()
	}
}

// setKind changes what the connection is counted as.
func (c *trackedConn) setKind(k ConnKind) {
	old := c.kind.Swap(k).(ConnKind)
	if old != k {
		c.t.metrics.ConnectionClosed(old)
		c.t.metrics.ConnectionOpened(k)
	}
}

func (c *trackedConn) followIdle(on bool) {
	c.lastWrite.Store(0)
	c.follow(c.Conn, on)
}

// SetDeadline and SetWriteDeadline, called by net/http, crypto/tls or the handshake code, replace the write
// deadline progress set: the next write sets a fresh one.
func (c *trackedConn) SetDeadline(t time.Time) error {
	c.lastWrite.Store(0)
	return c.Conn.SetDeadline(t)
}

func (c *trackedConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() && c.lastWrite.Load() != 0 {
		// net/http clears the write deadline after every answer (Go 1.26), and the next answer's first write
		// would set it again: two changes of the runtime's timers per request. The deadline progress set
		// stays instead; it lies at least the idle timeout less pushEvery ahead of any later write, which
		// pushes it on if it is older, so every write still has one. An idle connection writes nothing.
		return nil
	}
	c.lastWrite.Store(0)
	return c.Conn.SetWriteDeadline(t)
}

func (c *trackedConn) Read(p []byte) (int, error) {
	c.touch(c.Conn)
	return c.Conn.Read(p)
}

func (c *trackedConn) Write(p []byte) (int, error) {
	if c.following.Load() {
		c.touch(c.Conn)
	} else {
		c.progress()
	}
	return c.Conn.Write(p)
}

// progress gives each write to the app the idle timeout to make progress, so an app that stops reading
// cannot hold its connection, and the upstream one behind it, for ever. A long, slow stream is never cut
// while it moves. (net/http sets no write deadline of its own here: its WriteTimeout stays off.)
func (c *trackedConn) progress() {
	now := time.Now()
	if now.UnixNano()-c.lastWrite.Load() < int64(c.pushEvery()) {
		return
	}
	c.lastWrite.Store(now.UnixNano())
	_ = c.Conn.SetWriteDeadline(now.Add(c.idle))
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c)
		if c.counted {
			if c.t.from[c.from]--; c.t.from[c.from] <= 0 {
				delete(c.t.from, c.from)
			}
		}
		c.t.mu.Unlock()
		c.t.metrics.ConnectionClosed(c.kind.Load().(ConnKind))
		close(c.closed)
	})
	return c.Conn.Close()
}

// CloseWrite and CloseRead let goproxy half-close an upgraded connection as it does for bare TCP.
func (c *trackedConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return c.Conn.Close()
}

func (c *trackedConn) CloseRead() error {
	if hc, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return hc.CloseRead()
	}
	return nil
}

// idleDeadline moves a connection's deadline forward with its traffic, so the connection lives while it is
// used and ends after idle without any.
type idleDeadline struct {
	idle      time.Duration
	following atomic.Bool  // reads and writes push the deadline
	lastPush  atomic.Int64 // unix nanos of the last push
}

// follow turns the traffic-following deadline on, or off (clearing the deadline).
func (d *idleDeadline) follow(c net.Conn, on bool) {
	d.following.Store(on)
	if on {
		d.push(c, time.Now(), true)
	} else {
		_ = c.SetDeadline(time.Time{})
	}
}

// pushEvery is how stale a deadline may get before it is moved: a second, or a quarter of a short timeout.
func (d *idleDeadline) pushEvery() time.Duration { return min(time.Second, d.idle/4) }

func (d *idleDeadline) touch(c net.Conn) {
	if d.following.Load() {
		d.push(c, time.Now(), false)
	}
}

func (d *idleDeadline) push(c net.Conn, now time.Time, force bool) {
	// Pushing only now and then keeps the cost off each small read and write.
	if !force && now.UnixNano()-d.lastPush.Load() < int64(d.pushEvery()) {
		return
	}
	d.lastPush.Store(now.UnixNano())
	_ = c.SetDeadline(now.Add(d.idle))
}

// idleConn is a connection with a traffic-following idle deadline: the target side of a tunnel.
type idleConn struct {
	net.Conn
	idleDeadline
}

func newIdleConn(c net.Conn, idle time.Duration) *idleConn {
	ic := &idleConn{Conn: c, idleDeadline: idleDeadline{idle: idle}}
	ic.follow(c, true)
	return ic
}

func (c *idleConn) Read(p []byte) (int, error) {
	c.touch(c.Conn)
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.touch(c.Conn)
	return c.Conn.Write(p)
}

// sourceOf is what the per-address limit counts a connection under: its IPv4 address, or the /64 of its
// IPv6 address, since one IPv6 host commonly holds a whole /64 and could otherwise open connections from
// as many addresses as it likes.
func sourceOf(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() && !a.IsLoopback() {
		if p, err := a.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return a
}
