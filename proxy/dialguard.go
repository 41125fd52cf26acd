package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/hostname"
)

// errForbiddenAddress is a dial a gateway refuses: its clients may not reach the proxy's own machine or
// network through it.
var errForbiddenAddress = errors.New("an address of the proxy's own machine or link (loopback, link-local, " +
	"cloud metadata) or one of its own listeners")

// cloudMetadata are metadata services outside the link-local ranges (AWS over IPv6, Alibaba Cloud).
var cloudMetadata = []netip.Addr{netip.MustParseAddr("fd00:ec2::254"), netip.MustParseAddr("100.100.100.200")}

// nat64 is the well-known NAT64 prefix: an address in it reaches the IPv4 address in its last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// guardKey marks the context of a dial whose every address is checked, with the guard it is held to.
type guardKey struct{}

// What a guarded dial may reach.
type guardLevel int

const (
	guardAll         guardLevel = iota + 1 // none of the proxy's own machine and link
	guardButLoopback                       // loopback too, but never metadata, link-local or the proxy itself
)

// dialGuard keeps a proxy that listens beyond loopback (a gateway) from reaching, for its clients, what
// only the proxy's own machine should: loopback, link-local (169.254.169.254 is the cloud metadata
// service), the other metadata addresses, and the proxy's own listeners. The address checked is the one
// the socket connects to, after name resolution, so no name and no DNS answer can lead around it.
type dialGuard struct {
	s    *Server
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// checked is set when dial checks each address before it connects: always, but for a test's dialer,
	// which stands for the network and maps test names to loopback.
	checked bool

	mu   sync.Mutex
	own  []netip.AddrPort // the proxy's own listeners
	next time.Time        // when the machine's addresses are read again
	mine []netip.Addr     // the machine's interface addresses
}

func newDialGuard(s *Server, injected func(ctx context.Context, network, addr string) (net.Conn, error)) *dialGuard {
	g := &dialGuard{s: s, dial: injected}
	if injected == nil {
		d := &net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second, ControlContext: g.control}
		g.dial, g.checked = d.DialContext, true
	}
	return g
}

// addOwn records an address this process listens on.
func (g *dialGuard) addOwn(a net.Addr) {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		g.mu.Lock()
		g.own = append(g.own, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		g.mu.Unlock()
	}
}

// dialUnmatched dials for a request or tunnel of no route: a gateway checks every address.
func (g *dialGuard) dialUnmatched(ctx context.Context, network, addr string) (net.Conn, error) {
	if !g.checked || !g.s.listensBeyondLoopback(g.s.snap.Load().cfg) {
		return g.dial(ctx, network, addr)
	}
	return g.dial(context.WithValue(ctx, guardKey{}, guardAll), network, addr)
}

// dialRoute dials for a route's request. A host a route names exactly, not by a wildcard, may be on
// loopback (the operator named it); metadata, link-local addresses and the proxy's own listeners stay out
// of reach whatever routes.yaml says.
func (g *dialGuard) dialRoute(ctx context.Context, network, addr string) (net.Conn, error) {
	cfg := g.s.snap.Load().cfg
	if !g.checked || !g.s.listensBeyondLoopback(cfg) {
		return g.dial(ctx, network, addr)
	}
	level := guardAll
	if h, err := hostname.Parse(addr, ""); err == nil && cfg.NamesExactly(h) {
		level = guardButLoopback
	}
	return g.dial(context.WithValue(ctx, guardKey{}, level), network, addr)
}

// control checks the address a socket is about to connect to, when its dial is guarded.
func (g *dialGuard) control(ctx context.Context, _, address string, _ syscall.RawConn) error {
	level, _ := ctx.Value(guardKey{}).(guardLevel)
	if level == 0 {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil // not an IP socket
	}
	if g.forbidden(ap, level == guardButLoopback) {
		return fmt.Errorf("%s is %w", ap, errForbiddenAddress)
	}
	return nil
}

// listensBeyondLoopback reports whether the proxy serves other machines (a gateway): its listener, or the
// configuration's listen address, is beyond loopback.
func (s *Server) listensBeyondLoopback(cfg *config.Config) bool {
	host, _, err := net.SplitHostPort(cfg.Listen)
	return s.gateway.Load() || err != nil || !config.IsLoopback(host)
}

// forbidden reports whether a gateway must not connect to ap; with loopback allowed, only the proxy's own
// listeners there are.
func (g *dialGuard) forbidden(ap netip.AddrPort, loopback bool) bool {
	a := ap.Addr().Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	if loopback && a.IsLoopback() {
		return g.isOwnListener(netip.AddrPortFrom(a, ap.Port()))
	}
	switch {
	case a.IsLoopback(), a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast(), a.IsUnspecified():
		return true
	}
	for _, m := range cloudMetadata {
		if a == m {
			return true
		}
	}
	return g.isOwnListener(netip.AddrPortFrom(a, ap.Port()))
}

// isOwnListener reports whether ap reaches one of this process's listeners: its own address, or any of
// the machine's addresses on the port of a listener bound to all of them.
func (g *dialGuard) isOwnListener(ap netip.AddrPort) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	onPort := false
	for _, o := range g.own {
		if o == ap {
			return true
		}
		if o.Port() == ap.Port() && o.Addr().IsUnspecified() {
			onPort = true
		}
	}
	if !onPort {
		return false
	}
	if now := time.Now(); now.After(g.next) { // interfaces change rarely; read them at most every few seconds
		g.mine, g.next = interfaceAddrs(), now.Add(5*time.Second)
	}
	for _, m := range g.mine {
		if m == ap.Addr() {
			return true
		}
	}
	return false
}

func interfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}
