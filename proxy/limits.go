package proxy

import (
	"net"
	"net/netip"
	"time"

	"github.com/tokenproxy/tokenproxy/config"
)

// Connection limits of a gateway (a proxy that listens beyond loopback, or has clients rules) when
// routes.yaml's limits: sets none. A sidecar on loopback serves one app, which it does not limit.
const (
	GatewayMaxConnections           = 4096
	GatewayMaxConnectionsPerAddress = 256
)

// connLimits are the connection limits in service: routes.yaml's, else a gateway's defaults.
func (s *Server) connLimits() (total, perAddress int) {
	cfg := s.snap.Load().cfg
	total, perAddress = cfg.Limits.MaxConnections, cfg.Limits.MaxConnectionsPerAddress
	if s.listensBeyondLoopback(cfg) || len(cfg.Clients) > 0 {
		if total == 0 {
			total = GatewayMaxConnections
		}
		if perAddress == 0 {
			perAddress = min(GatewayMaxConnectionsPerAddress, total)
		}
	}
	return total, perAddress
}

// connRefused counts a connection closed over a limit, and logs it, once every 10 s at most.
func (s *Server) connRefused(reason string, from netip.Addr) {
	s.metrics.ConnectionRefused(reason)
	now := time.Now().UnixNano()
	last := s.lastRefusalLog.Load()
	if now-last < int64(10*time.Second) || !s.lastRefusalLog.CompareAndSwap(last, now) {
		return
	}
	total, perAddress := s.connLimits()
	s.log.Warn("connection refused: over the connection limit (set limits: in routes.yaml to change it)", "reason", reason,
		"remote", from.String(), "max_connections", total, "max_connections_per_address", perAddress)
}

// isLoopbackAddr reports whether a listener's address is a loopback one.
func isLoopbackAddr(a net.Addr) bool {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().IsLoopback()
	}
	host, _, _ := net.SplitHostPort(a.String())
	return config.IsLoopback(host)
}
