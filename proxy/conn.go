package proxy

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// connTracker watches the connections that net/http hands over to goproxy (CONNECT tunnels, intercepted
// TLS): it gives them deadlines, which net/http no longer enforces, and closes them at shutdown.
type connTracker struct {
	headerTimeout time.Duration // from hijack until the tunnel carries its first request
	idle          time.Duration // afterwards, with no traffic in either direction
	mu            sync.Mutex
	conns         map[*trackedConn]struct{}
}

func newConnTracker(headerTimeout, idle time.Duration) *connTracker {
	return &connTracker{headerTimeout: headerTimeout, idle: idle, conns: map[*trackedConn]struct{}{}}
}

// trackingListener wraps each accepted connection in a trackedConn.
type trackingListener struct {
	net.Listener
	t *connTracker
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, t: l.t}
	l.t.mu.Lock()
	l.t.conns[tc] = struct{}{}
	l.t.mu.Unlock()
	return tc, nil
}

type connKey struct{}

// connContext puts the connection into its requests' context, so handlers can reach it.
func (t *connTracker) connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// connFrom returns the client connection of a request served by net/http, or nil.
func connFrom(ctx context.Context) *trackedConn {
	c, _ := ctx.Value(connKey{}).(*trackedConn)
	return c
}

// connState is the http.Server hook that starts a hijacked connection's deadlines.
func (t *connTracker) connState(c net.Conn, state http.ConnState) {
	if tc, ok := c.(*trackedConn); ok && state == http.StateHijacked {
		tc.hijacked.Store(true)
		if tc.active.Load() {
			tc.push(time.Now(), true)
		} else {
			_ = tc.Conn.SetDeadline(time.Now().Add(t.headerTimeout))
		}
	}
}

// closeHijacked closes every hijacked connection still open.
func (t *connTracker) closeHijacked() {
	t.mu.Lock()
	var open []*trackedConn
	for c := range t.conns {
		if c.hijacked.Load() {
			open = append(open, c)
		}
	}
	t.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
}

// trackedConn is an accepted connection. Until hijacked, net/http manages its deadlines. After, it must
// carry its first request (or become a plain tunnel) within the header timeout; from then on every read or
// write pushes one idle deadline forward, so a tunnel lives while either side talks.
type trackedConn struct {
	net.Conn
	t        *connTracker
	hijacked atomic.Bool
	active   atomic.Bool  // past its first request, or a plain tunnel
	lastPush atomic.Int64 // unix nanos of the last deadline push
	closed   sync.Once
}

// activate switches the connection from the header timeout to the idle deadline.
func (c *trackedConn) activate() {
	if c.active.CompareAndSwap(false, true) && c.hijacked.Load() {
		c.push(time.Now(), true)
	}
}

func (c *trackedConn) push(now time.Time, force bool) {
	// Pushing at most once a second keeps the cost off each small read and write.
	if !force && now.UnixNano()-c.lastPush.Load() < int64(time.Second) {
		return
	}
	c.lastPush.Store(now.UnixNano())
	_ = c.Conn.SetDeadline(now.Add(c.t.idle))
}

func (c *trackedConn) touch() {
	if c.hijacked.Load() && c.active.Load() {
		c.push(time.Now(), false)
	}
}

func (c *trackedConn) Read(p []byte) (int, error) {
	c.touch()
	return c.Conn.Read(p)
}

func (c *trackedConn) Write(p []byte) (int, error) {
	c.touch()
	return c.Conn.Write(p)
}

func (c *trackedConn) Close() error {
	c.closed.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c)
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

// CloseWrite and CloseRead let goproxy half-close a tunnel as it does for bare TCP connections.
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
