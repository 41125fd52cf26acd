package proxy

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// trackingListener wraps accepted connections so that hijacked ones (CONNECT tunnels, intercepted TLS),
// which net/http no longer watches, get an idle deadline and can be closed at shutdown.
type trackingListener struct {
	net.Listener
	idle  time.Duration
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func newTrackingListener(l net.Listener, idle time.Duration) *trackingListener {
	return &trackingListener{Listener: l, idle: idle, conns: map[*trackedConn]struct{}{}}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

// connState is the http.Server hook that hands a hijacked connection its idle deadline.
func (l *trackingListener) connState(c net.Conn, state http.ConnState) {
	if tc, ok := c.(*trackedConn); ok && state == http.StateHijacked {
		tc.idle = l.idle
		tc.hijacked.Store(true)
		tc.touch()
	}
}

// closeHijacked closes every hijacked connection still open.
func (l *trackingListener) closeHijacked() {
	l.mu.Lock()
	var open []*trackedConn
	for c := range l.conns {
		if c.hijacked.Load() {
			open = append(open, c)
		}
	}
	l.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
}

// trackedConn is an accepted connection. Until hijacked, net/http manages its deadlines; after, every
// read or write pushes one idle deadline forward, so a tunnel lives while either side talks.
type trackedConn struct {
	net.Conn
	l        *trackingListener
	idle     time.Duration
	hijacked atomic.Bool
	lastSet  atomic.Int64 // unix nanos of the last deadline push
	closed   sync.Once
}

func (c *trackedConn) touch() {
	if !c.hijacked.Load() {
		return
	}
	now := time.Now()
	// Pushing at most once a second keeps the cost off each small read and write.
	if now.UnixNano()-c.lastSet.Load() < int64(time.Second) {
		return
	}
	c.lastSet.Store(now.UnixNano())
	_ = c.Conn.SetDeadline(now.Add(c.idle))
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
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
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
