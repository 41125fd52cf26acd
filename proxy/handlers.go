package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// tunnel is what a CONNECT to a route's host leaves for the requests inside it.
type tunnel struct {
	host  string // as in the CONNECT line, host:port
	route *Route
	conn  *trackedConn // nil when not served by Serve (tests calling ServeHTTP)
}

// exchange is one request's state between onRequest and RoundTrip.
type exchange struct {
	route       *Route
	start       time.Time
	inTunnel    bool
	clientConn  *trackedConn // the app's connection on the plain path; nil inside a tunnel
	tokenVia    string       // none, cache or fetch
	fingerprint string
	replayed    bool // sent again with a fresh token after a 401
}

// onConnect decides what a CONNECT becomes: interception for a route's host, a plain tunnel otherwise.
func (s *Server) onConnect(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	route := s.routes.match(host, "443")
	switch {
	case route != nil && s.cfg.CA == nil:
		s.log.Warn("CONNECT refused: route host but no mitm section", "route", route.Name, "host", host)
		ctx.Resp = refusal(ctx.Req, http.StatusForbidden, fmt.Sprintf(
			"tokenproxy: %s belongs to route %q, but routes.yaml has no mitm section, so https requests to it "+
				"cannot get a token. Add mitm: {caCert, caKey} (tokenproxy ca -out DIR makes a CA), or send the "+
				"request as plain http:// and set upstreamTLS: true on the route.\n", host, route.Name))
		return goproxy.RejectConnect, host
	case route != nil:
		ctx.UserData = &tunnel{host: host, route: route, conn: connFrom(ctx.Req.Context())}
		return s.intercept, host
	case s.cfg.RejectUnmatched:
		s.log.Info("request", "route", "-", "method", http.MethodConnect, "host", host, "status", http.StatusForbidden)
		ctx.Resp = refusal(ctx.Req, http.StatusForbidden, unmatchedMessage(host))
		return goproxy.RejectConnect, host
	}
	s.log.Info("tunnel", "route", "-", "method", http.MethodConnect, "host", host)
	if c := connFrom(ctx.Req.Context()); c != nil {
		c.activate() // bytes only from here on: the idle deadline applies
	}
	return goproxy.OkConnect, host
}

// onRequest finds the route of a plain or intercepted request, refuses what must not pass, and leaves the
// round trip to RoundTrip.
func (s *Server) onRequest(req *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	var route *Route
	t, inTunnel := ctx.UserData.(*tunnel)
	if inTunnel {
		if t.conn != nil {
			t.conn.activate()
		}
		// Plain HTTP inside a CONNECT would carry the route's token unencrypted.
		if req.URL.Scheme != "https" {
			s.log.Warn("request refused: plain http inside an intercepted tunnel", "route", t.route.Name, "tunnel", t.host)
			return req, refusal(req, http.StatusBadRequest, fmt.Sprintf(
				"tokenproxy: the connection opened (CONNECT) for %s must speak TLS; send https:// requests through it\n", t.host))
		}
		// Inside an intercepted tunnel the Host header chooses the upstream: any other host than the
		// CONNECT's would receive this route's token.
		if !sameHost(req.URL.Host, defaultPort(req.URL.Scheme), t.host) {
			s.log.Warn("request refused: host differs from its tunnel", "route", t.route.Name,
				"tunnel", t.host, "host", req.URL.Host)
			return req, refusal(req, http.StatusBadRequest, fmt.Sprintf(
				"tokenproxy: this connection was opened (CONNECT) for %s; a request for %s cannot use it\n", t.host, req.URL.Host))
		}
		route = t.route
	} else {
		route = s.routes.match(req.URL.Host, defaultPort(req.URL.Scheme))
	}
	if route == nil && s.cfg.RejectUnmatched {
		s.log.Info("request", "route", "-", "method", req.Method, "host", req.URL.Host, "status", http.StatusForbidden)
		return req, refusal(req, http.StatusForbidden, unmatchedMessage(req.URL.Host))
	}
	// Connection names the hop-by-hop headers; goproxy deletes it before RoundTrip, so strip them here.
	removeHopByHop(req.Header)
	x := &exchange{route: route, start: time.Now(), tokenVia: "none", inTunnel: inTunnel}
	if !inTunnel {
		x.clientConn = connFrom(req.Context())
	}
	ctx.UserData = x
	ctx.RoundTripper = s
	// Counted from here, so Shutdown waits for it; goproxy always calls RoundTrip next.
	s.inflight.Add(1)
	return req, nil
}

var _ goproxy.RoundTripper = (*Server)(nil)

// RoundTrip puts the route's token on the request and sends it upstream. It never returns an error:
// failures become 502/504 answers that say which step broke, on plain and intercepted connections alike.
func (s *Server) RoundTrip(req *http.Request, ctx *goproxy.ProxyCtx) (*http.Response, error) {
	x, ok := ctx.UserData.(*exchange)
	if !ok {
		x = &exchange{start: time.Now()}
		s.inflight.Add(1)
	}
	// The app's Connection: close is about its own connection; the upstream one stays pooled.
	req.Close = false
	resp, failed := s.forward(req, x)
	if failed {
		s.inflight.Add(-1)
		return resp, nil
	}
	removeHopByHop(resp.Header)
	body := &inflightBody{ReadCloser: resp.Body, s: s}
	if resp.StatusCode == http.StatusSwitchingProtocols && x.clientConn != nil {
		// goproxy leaves the app's connection open when the upstream ends an upgraded plain-path
		// connection; closing it with the upstream's ends the session for the app too.
		body.alsoClose = x.clientConn
	} else if resp.ContentLength < 0 && resp.Header.Get("Content-Length") == "" {
		// goproxy flushes each write only when it sees this header; the transport took the original away.
		resp.Header.Set("Transfer-Encoding", "chunked")
	}
	if x.inTunnel && s.draining.Load() {
		resp.Close = true // shutting down: the app opens a new connection for its next request
	}
	resp.Body = body
	if s.log.Enabled(req.Context(), slog.LevelInfo) {
		s.log.Info("request", "route", routeName(x.route), "method", req.Method, "host", req.URL.Host,
			"status", resp.StatusCode, "duration", time.Since(x.start), "token", x.tokenVia, "token_fp", x.fingerprint,
			"replayed", x.replayed)
	}
	return resp, nil
}

// forward sends req upstream with the route's token and, when the supplier refuses the token, once more
// with a fresh one. A failure comes back as tokenproxy's own answer, with failed set.
func (s *Server) forward(req *http.Request, x *exchange) (resp *http.Response, failed bool) {
	r := x.route
	if r == nil {
		resp, err := s.upstream.RoundTrip(req)
		if err != nil {
			return s.upstreamFailure(req, x, err), true
		}
		return resp, false
	}
	if r.UpstreamTLS && req.URL.Scheme == "http" {
		req.URL.Scheme = "https"
	}
	body := keepForReplay(req, r)
	tok, err := s.authorize(req, x)
	if err != nil {
		return s.tokenFailure(req, x, err), true
	}
	resp, err = s.upstream.RoundTrip(req)
	if err != nil {
		return s.upstreamFailure(req, x, err), true
	}
	if resp.StatusCode != http.StatusUnauthorized || !body.replayable() {
		return resp, false
	}
	// The supplier refused the token. Drop it; requests refused the same token share one fresh fetch. A
	// route without cache fetched this token for this request: another would fare no better.
	if !r.Cache || !s.cache.Reject(s.fetchers[r], tok) {
		s.log.Warn("the supplier refused a token issued moments ago; not fetching another: check scope, params, header and prefix",
			"route", r.Name, "host", req.URL.Host, "token_fp", tok.Fingerprint(), "token_age", time.Since(tok.Obtained).Round(time.Second))
		return resp, false
	}
	retry := req.Clone(req.Context())
	retry.Body = body.replay()
	if _, err := s.authorize(retry, x); err != nil {
		s.log.Warn("no fresh token after a 401; the app gets the supplier's 401", "route", r.Name, "error", err)
		return resp, false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	x.replayed = true
	resp, err = s.upstream.RoundTrip(retry)
	if err != nil {
		return s.upstreamFailure(retry, x, err), true
	}
	return resp, false
}

// authorize puts a token of the exchange's route on req.
func (s *Server) authorize(req *http.Request, x *exchange) (*tokensource.Token, error) {
	tok, hit, err := s.token(req.Context(), x.route)
	if err != nil {
		return nil, err
	}
	x.tokenVia, x.fingerprint = "fetch", tok.Fingerprint()
	if hit {
		x.tokenVia = "cache"
	}
	x.route.Authorize(req.Header, tok.Value)
	return tok, nil
}

// Authorize sets the route's token header (replacing the app's value) and its extra headers.
func (r *Route) Authorize(h http.Header, token string) {
	h.Del(r.Header)
	h.Set(r.Header, r.Prefix+token)
	for k, v := range r.Headers {
		h.Set(k, v)
	}
}

func (s *Server) token(ctx context.Context, r *Route) (*tokensource.Token, bool, error) {
	f := s.fetchers[r]
	if !r.Cache {
		tok, err := s.cache.Fresh(ctx, f)
		return tok, false, err
	}
	return s.cache.Token(ctx, f)
}

// inflightBody counts a request as in flight until its answer has been sent.
type inflightBody struct {
	io.ReadCloser
	s         *Server
	done      bool
	alsoClose net.Conn // closed with the body: the app's side of an upgraded connection
}

func (b *inflightBody) Close() error {
	if !b.done {
		b.done = true
		b.s.inflight.Add(-1)
		if b.alsoClose != nil {
			_ = b.alsoClose.Close()
		}
	}
	return b.ReadCloser.Close()
}

// Write lets a websocket (101) body stay writable through the wrapper.
func (b *inflightBody) Write(p []byte) (int, error) {
	if w, ok := b.ReadCloser.(io.Writer); ok {
		return w.Write(p)
	}
	return 0, errors.New("proxy: response body is not writable")
}

func routeName(r *Route) string {
	if r == nil {
		return "-"
	}
	return r.Name
}

func defaultPort(scheme string) string {
	if scheme == "https" || scheme == "wss" {
		return "443"
	}
	return "80"
}

// sameHost compares a request's URL host with a CONNECT host:port, case-insensitively.
func sameHost(reqHost, reqDefaultPort, connectHost string) bool {
	n1, p1 := splitHostPort(reqHost, reqDefaultPort)
	n2, p2 := splitHostPort(connectHost, "443")
	return p1 == p2 && strings.EqualFold(strings.TrimSuffix(n1, "."), strings.TrimSuffix(n2, "."))
}
