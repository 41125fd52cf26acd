package proxy

import (
	"time"

	"github.com/tokenproxy/tokenproxy/tokensource"
)

// Metrics records what the proxy does. The admin package's Prometheus adapter implements it; tests use a
// recording one. Route names appear as labels; tokens, secrets and fingerprints never do.
type Metrics interface {
	tokensource.Metrics
	// Request counts a request answered to the app: route "-" when unmatched, status as the app got it.
	Request(route string, status int, took time.Duration)
	// Error counts tokenproxy's own failure answers and refusals by kind: token, upstream or policy.
	Error(route, kind string)
	// Replay counts a request sent again with a fresh token after a 401.
	Replay(route string)
	// Denied counts a request the clients rules refused: reason is address, credentials or route.
	Denied(reason string)
	// ConnectionRefused counts a client connection closed as it arrived, over a gateway's connection
	// limits: reason is total or per-address.
	ConnectionRefused(reason string)
	// ConnectionOpened and ConnectionClosed track the client connections open now, by kind.
	ConnectionOpened(kind ConnKind)
	ConnectionClosed(kind ConnKind)
	// RoutesInService names the routes of the configuration just put in service (by New, then by each
	// Swap), so the series alerts watch exist at zero before their first event and those of routes a
	// reload removed go.
	RoutesInService(routes []string)
}

// ConnKind is what a client connection carries.
type ConnKind string

const (
	// ConnPlain carries absolute-form requests (plain http:// and websocket upgrades of them).
	ConnPlain ConnKind = "plain"
	// ConnIntercepted is a CONNECT to a route host, decrypted with a leaf of the interception CA.
	ConnIntercepted ConnKind = "intercepted"
	// ConnTunnel is a CONNECT to any other host, relayed byte for byte.
	ConnTunnel ConnKind = "tunnel"
)

// Error kinds, as in X-Tokenproxy-Error.
const (
	StepToken    = "token"
	StepUpstream = "upstream"
	StepPolicy   = "policy"
)

type noMetrics struct{}

func (noMetrics) TokenLookup(string, tokensource.Via)        {}
func (noMetrics) TokenFetched(string, string, time.Duration) {}
func (noMetrics) RefusalBackoff(string)                      {}
func (noMetrics) Request(string, int, time.Duration)         {}
func (noMetrics) Error(string, string)                       {}
func (noMetrics) Replay(string)                              {}
func (noMetrics) Denied(string)                              {}
func (noMetrics) ConnectionRefused(string)                   {}
func (noMetrics) ConnectionOpened(ConnKind)                  {}
func (noMetrics) ConnectionClosed(ConnKind)                  {}
func (noMetrics) RoutesInService([]string)                   {}
