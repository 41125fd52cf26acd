package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/hopbyhop"
	"github.com/tokenproxy/tokenproxy/proxy/authheader"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// exchange is one request from its arrival to the end of its answer.
type exchange struct {
	snap   *snapshot // the configuration the request runs on, from start to end
	route  *config.Route
	start  time.Time
	method string
	host   string // canonical (hostname.Host.Authority): the same value is matched, dialled and logged
	path   string
	tunnel *tunnel // the intercepted connection it arrived on; nil for a plain request
	client string  // the name of the client the clients rules let in; empty without rules
	// clientConn is the app's connection on the plain path; nil inside a tunnel.
	clientConn  *trackedConn
	counted     bool   // counted in Server.inflight
	tokenVia    string // hit, wait or fetch; empty when no token was put on the request
	fingerprint string
	// tokenLeft is set when the request's headers, token included, were written to an upstream connection
	// (by the transport's writer goroutine); a request that never got that far sent no token.
	tokenLeft atomic.Bool
	trace     httptrace.ClientTrace // an HTTP/2 stream's own (see traceWrites)
	replayed  bool                  // sent again with a fresh token after a 401
	// replayReserved is what of the server's replay budget this exchange holds for its body.
	replayReserved int64
	status         int
	step           string // token, upstream or policy when tokenproxy answered itself
	err            error
	sent           atomic.Int64 // request body bytes read from the app
	received       atomic.Int64 // response body bytes given to the app
	// answerTo is the app's ResponseWriter on HTTP/1 connections; nil on HTTP/2 (see respond).
	answerTo http.ResponseWriter
	answer   answerBody // the body of the exchange's answer, kept here to save an allocation
	// body is the app's request body, nil without one.
	body *clientBody
	// The upstream round trip: when it began, on which transport, and its place among those in flight.
	rtStart        time.Time
	rtTransport    *http.Transport
	rtPrev, rtNext *exchange
}

// onRequest finds the route of a plain or intercepted request, refuses what must not pass, and leaves the
// round trip to RoundTrip.
func (s *Server) onRequest(req *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	x := &exchange{snap: s.snap.Load(), start: time.Now(), method: req.Method, host: req.URL.Host, path: req.URL.Path, counted: true}
	// Counted from here, so Shutdown waits for it; the answer's body closes it (see respond).
	s.inflight.Add(1)
	ctx.UserData = x
	ctx.RoundTripper = s
	x.linkBody(req)
	if req.URL.User != nil {
		// Go's transport would turn user info into an Authorization header of its own, beside the route's.
		return req, s.refuse(req, x, http.StatusBadRequest, "tokenproxy: a URL with user info (user:password@host) is not forwarded\n")
	}
	// goproxy's own header removal is off (KeepHeader); this and hopbyhop.Remove below do its work.
	req.RequestURI = ""
	t := tunnelFrom(req.Context())
	if t != nil {
		x.tunnel = t
		x.answerTo = t.conn.answer
	} else {
		x.clientConn = connFrom(req.Context())
		if x.clientConn != nil {
			x.answerTo = x.clientConn.answer
		}
	}
	host, refused := s.targetOf(req, x)
	if refused != nil {
		return req, refused
	}
	x.route = x.snap.cfg.Match(host)
	if r := x.route; r != nil && r.UpstreamTLS && req.URL.Scheme == "http" {
		// It goes upstream over https: to the port the request wrote, else 443, which the route must name
		// too, or the token would reach a port no pattern of the route matched.
		tls := host.WithPort("443")
		if x.snap.cfg.Match(tls) != r {
			return req, s.misdirected(req, x, fmt.Sprintf("tokenproxy: route %q sends this request upstream over https to %s, "+
				"which it does not name (upstreamTLS: true); name that port in its hosts, or write it in the URL\n", r.Name, tls.String()))
		}
		req.URL.Scheme = "https"
		x.host = tls.String()
	}
	if _, denied := s.admission(x, req); denied != nil {
		return req, s.respond(x, denied)
	}
	if x.route == nil && x.snap.cfg.RejectUnmatched {
		return req, s.refuse(req, x, http.StatusForbidden, unmatchedMessage(x.host))
	}
	if x.route != nil && asksForAnEcho(req) {
		// A supplier that echoes the request would show the app the route's token.
		resp := s.refuse(req, x, http.StatusMethodNotAllowed, fmt.Sprintf(
			"tokenproxy: TRACE is not forwarded to a route's host: the supplier's echo would carry route %q's token\n", x.route.Name))
		return req, resp
	}
	// Connection names the hop-by-hop headers; goproxy deletes it before RoundTrip, so strip them here.
	hopbyhop.Remove(req.Header)
	return req, nil
}

var _ goproxy.RoundTripper = (*Server)(nil)

// RoundTrip puts the route's token on the request and sends it upstream. It never returns an error:
// failures become 502/504 answers that say which step broke, on plain and intercepted connections alike.
func (s *Server) RoundTrip(req *http.Request, ctx *goproxy.ProxyCtx) (*http.Response, error) {
	x, ok := ctx.UserData.(*exchange)
	if !ok { // goproxy always calls onRequest first; this keeps RoundTrip safe on its own
		x = &exchange{snap: s.snap.Load(), start: time.Now(), method: req.Method, host: req.URL.Host}
	}
	// The app's Connection: close is about its own connection; the upstream one stays pooled.
	req.Close = false
	resp, failed := s.forward(req, x)
	if failed {
		return s.respond(x, resp), nil
	}
	hopbyhop.Remove(resp.Header)
	var alsoClose net.Conn
	if resp.StatusCode == http.StatusSwitchingProtocols && x.clientConn != nil {
		// goproxy leaves the app's connection open when the upstream ends an upgraded plain-path
		// connection; closing it with the upstream's ends the session for the app too.
		alsoClose = x.clientConn
	} else if resp.ContentLength < 0 && resp.Header.Get("Content-Length") == "" {
		// goproxy flushes each write only when it sees this header; the transport took the original away.
		resp.Header.Set("Transfer-Encoding", "chunked")
	}
	resp = s.respond(x, resp)
	resp.Body.(*answerBody).alsoClose = alsoClose
	return resp, nil
}

// forward sends req upstream with the route's token and, when the supplier refuses the token, once more
// with a fresh one. A failure comes back as tokenproxy's own answer, with failed set.
func (s *Server) forward(req *http.Request, x *exchange) (resp *http.Response, failed bool) {
	r := x.route
	if r == nil {
		resp, err := s.up.roundTrip(req, x)
		if err != nil {
			return s.upstreamFailure(req, x, err), true
		}
		return resp, false
	}
	body, err := s.keepForReplay(req, r, x)
	if x.body != nil && x.body.stalled.Load() {
		return s.bodyStalled(req, x, err), true
	}
	if err != nil {
		x.step, x.err = StepPolicy, err
		return refusal(req, http.StatusBadRequest, "tokenproxy: "+err.Error()+"; nothing was sent upstream\n"), true
	}
	tok, err := s.authorize(req, x)
	if err != nil {
		return s.tokenFailure(req, x, err), true
	}
	// Whether the token left is told by the transport itself: a refused dial or a failed handshake sends
	// nothing, while a connection that breaks after the request was written (and the transport's own retry
	// on a new one) did send it. A replay's clone keeps the context, and so the trace.
	req = x.traceWrites(req)
	resp, err = s.up.roundTrip(req, x)
	if err != nil {
		return s.upstreamFailure(req, x, err), true
	}
	if resp.StatusCode != http.StatusUnauthorized || !body.replayable() {
		return resp, false
	}
	// The supplier refused the token. Drop it; requests refused the same token share one fresh fetch,
	// unless the cache is backing off refusals. (cache: false routes never get here: they keep no body.)
	if !s.cache.Reject(x.snap.fetchers[r], tok) {
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
	s.metrics.Replay(r.Name)
	resp, err = s.up.roundTrip(retry, x)
	if err != nil {
		return s.upstreamFailure(retry, x, err), true
	}
	return resp, false
}

func (x *exchange) wroteHeaders() { x.tokenLeft.Store(true) }

// traceWrites has the transport tell x when it has written req's headers, from now until x ends. On an
// HTTP/1 connection the trace set up with the connection is already in req's context, and x becomes the
// exchange it tells; an HTTP/2 stream's request gets a trace of its own.
func (x *exchange) traceWrites(req *http.Request) *http.Request {
	if c := x.conn(); c != nil && req.ProtoMajor == 1 && httptrace.ContextClientTrace(req.Context()) == &c.trace {
		c.sending.Store(x)
		return req
	}
	x.trace.WroteHeaders = x.wroteHeaders
	return req.WithContext(httptrace.WithClientTrace(req.Context(), &x.trace))
}

// conn is the app's connection the exchange arrived on: the plain one, or the one intercepted.
func (x *exchange) conn() *trackedConn {
	if x.tunnel != nil {
		return x.tunnel.conn
	}
	return x.clientConn
}

// authorize puts a token of the exchange's route on req.
func (s *Server) authorize(req *http.Request, x *exchange) (*tokensource.Token, error) {
	tok, via, err := s.token(req.Context(), x)
	if err != nil {
		return nil, err
	}
	x.tokenVia, x.fingerprint = string(via), tok.Fingerprint()
	authheader.Set(req.Header, x.route, tok)
	return tok, nil
}

func (s *Server) token(ctx context.Context, x *exchange) (*tokensource.Token, tokensource.Via, error) {
	f := x.snap.fetchers[x.route]
	if !x.route.Cache {
		tok, err := s.cache.Fresh(ctx, f)
		return tok, tokensource.ViaFetch, err
	}
	return s.cache.Token(ctx, f)
}

// respond makes resp the exchange's answer, once per exchange: its body counts the bytes given to the app,
// and closing it ends the exchange (logged, counted).
func (s *Server) respond(x *exchange, resp *http.Response) *http.Response {
	if x.step != "" && x.answerTo != nil && x.body != nil && x.body.cutOff() {
		// tokenproxy answers before the app's HTTP/1 body is whole: no byte more of it is read (net/http
		// would read it before answering, for as long as the app likes), and the connection closes.
		resp.Header.Set("Connection", "close")
		resp.Close = true
	}
	x.status = resp.StatusCode
	x.answer = answerBody{ReadCloser: resp.Body, s: s, x: x}
	resp.Body = &x.answer
	if x.answerTo != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		// Hand the headers to the app's answer: goproxy, keeping destination headers, has none left to
		// copy. A 101 keeps them: goproxy looks there for the websocket upgrade.
		h := x.answerTo.Header()
		for k, v := range resp.Header {
			h[k] = v
		}
		resp.Header = nil
	}
	return resp
}

// refuse answers a request with one of tokenproxy's refusals (X-Tokenproxy-Error: policy).
func (s *Server) refuse(req *http.Request, x *exchange, status int, body string) *http.Response {
	x.step = StepPolicy
	return s.respond(x, refusal(req, status, body))
}

func routeName(r *config.Route) string {
	if r == nil {
		return "-"
	}
	return r.Name
}
