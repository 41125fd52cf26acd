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

// tokenproxy's own answers: what broke (X-Tokenproxy-Error), in words a person can act on.

func (s *Server) tokenFailure(req *http.Request, x *exchange, err error) *http.Response {
	var b strings.Builder
	fmt.Fprintf(&b, "tokenproxy: route %q: the token step failed, so the request was not sent to %s.\n", x.route.Name, req.URL.Host)
	if te, ok := tokensource.AsError(err); ok {
		fmt.Fprintf(&b, "token endpoint: %s\n", te.TokenURL)
		switch {
		case te.StatusCode != 0:
			fmt.Fprintf(&b, "answer: HTTP %d", te.StatusCode)
			if te.Code != "" {
				fmt.Fprintf(&b, ", error %s", te.Code)
			}
			if te.Description != "" {
				fmt.Fprintf(&b, " (%s)", te.Description)
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "cause: %s\n", strings.TrimPrefix(te.Error(), "tokensource: token endpoint "+te.TokenURL+": "))
		var bo *tokensource.BackoffError
		if errors.As(err, &bo) {
			fmt.Fprintf(&b, "note: tokenproxy is backing off this endpoint after failures; it asks again after %s\n",
				bo.Until.UTC().Format(time.RFC3339))
		}
		if hint := te.Hint(); hint != "" {
			fmt.Fprintf(&b, "hint: %s\n", hint)
		}
	} else {
		fmt.Fprintf(&b, "cause: %v\n", err)
	}
	s.log.Error("token step failed", "route", x.route.Name, "method", req.Method, "host", req.URL.Host,
		"status", http.StatusBadGateway, "duration", time.Since(x.start), "error", err)
	return errorResponse(req, http.StatusBadGateway, "token", x.route, b.String())
}

func (s *Server) upstreamFailure(req *http.Request, x *exchange, err error) *http.Response {
	status := http.StatusBadGateway
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		status = http.StatusGatewayTimeout
	}
	level := slog.LevelError
	if errors.Is(err, context.Canceled) {
		level = slog.LevelDebug // the app went away
	}
	s.log.Log(req.Context(), level, "upstream failed", "route", routeName(x.route), "method", req.Method,
		"host", req.URL.Host, "status", status, "duration", time.Since(x.start), "error", err)
	body := fmt.Sprintf("tokenproxy: route %q: the request to the upstream %s failed: %v\n", routeName(x.route), req.URL.Host, err)
	if x.route == nil {
		body = fmt.Sprintf("tokenproxy: the request to %s (no route) failed: %v\n", req.URL.Host, err)
	}
	return errorResponse(req, status, "upstream", x.route, body)
}

// errorResponse is an answer of tokenproxy's own; step goes into X-Tokenproxy-Error.
func errorResponse(req *http.Request, status int, step string, route *Route, body string) *http.Response {
	resp := refusal(req, status, body)
	resp.Header.Set("X-Tokenproxy-Error", step)
	if route != nil {
		resp.Header.Set("X-Tokenproxy-Route", route.Name)
	}
	return resp
}

// refusal is a small text answer; it closes the connection when answering a CONNECT.
func refusal(req *http.Request, status int, body string) *http.Response {
	resp := goproxy.NewResponse(req, goproxy.ContentTypeText, status, body)
	resp.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp.Header.Set("X-Tokenproxy-Error", "policy")
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
	if req.Method == http.MethodConnect {
		resp.Close = true
	}
	return resp
}

func unmatchedMessage(host string) string {
	return fmt.Sprintf("tokenproxy: %s matches no route and routes.yaml says unmatched: reject\n", host)
}

// tunnelDialError marks a failure to reach a CONNECT target, which is still answerable with a status line.
type tunnelDialError struct {
	addr string
	err  error
}

func (e *tunnelDialError) Error() string { return fmt.Sprintf("cannot reach %s: %v", e.addr, e.err) }
func (e *tunnelDialError) Unwrap() error { return e.err }

func (s *Server) dialTunnel(req *http.Request, network, addr string) (net.Conn, error) {
	c, err := s.dial(req.Context(), network, addr)
	if err != nil {
		return nil, &tunnelDialError{addr: addr, err: err}
	}
	return c, nil
}

// writeTunnelError answers a CONNECT whose target could not be reached. Errors after the tunnel is up
// are not answerable (bytes are already flowing) and only logged.
func (s *Server) writeTunnelError(w io.Writer, ctx *goproxy.ProxyCtx, err error) {
	var de *tunnelDialError
	if !errors.As(err, &de) {
		s.log.Debug("tunnel closed with error", "error", err)
		return
	}
	x := &exchange{start: time.Now()}
	resp := s.upstreamFailure(ctx.Req, x, err)
	resp.Close = true
	if werr := resp.Write(w); werr != nil {
		s.log.Debug("cannot answer CONNECT", "error", werr)
	}
}
