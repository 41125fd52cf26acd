package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// tokenproxy's own answers: what broke (X-Tokenproxy-Error), in words a person can act on.

func (s *Server) tokenFailure(req *http.Request, x *exchange, err error) *http.Response {
	x.step, x.err = StepToken, err
	var b strings.Builder
	fmt.Fprintf(&b, "tokenproxy: route %q: the token step failed, so the request was not sent to %s.\n", x.route.Name, req.URL.Host)
	if te, ok := tokensource.AsError(err); ok {
		fmt.Fprintf(&b, "token endpoint: %s (authStyle %s)\n", te.TokenURL, te.Style())
		fmt.Fprintf(&b, "cause: %s\n", te.Cause())
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
	return errorResponse(req, http.StatusBadGateway, StepToken, x.route, b.String())
}

func (s *Server) upstreamFailure(req *http.Request, x *exchange, err error) *http.Response {
	if x.body != nil && x.body.stalled.Load() {
		return s.bodyStalled(req, x, err)
	}
	if errors.Is(err, errForbiddenAddress) {
		x.step, x.err = StepPolicy, err
		return refusal(req, http.StatusForbidden, fmt.Sprintf("tokenproxy: %s was not reached: %v. This proxy listens "+
			"beyond loopback, so it reaches such addresses only for hosts a route names\n", x.host, err))
	}
	x.step, x.err = StepUpstream, err
	status := http.StatusBadGateway
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		status = http.StatusGatewayTimeout
	}
	body := fmt.Sprintf("tokenproxy: route %q: the request to the upstream %s failed: %v\n", routeName(x.route), req.URL.Host, err)
	if x.route == nil {
		body = fmt.Sprintf("tokenproxy: the request to %s (no route) failed: %v\n", req.URL.Host, err)
	}
	return errorResponse(req, status, StepUpstream, x.route, body)
}

// bodyStalled answers a request whose body made no progress for the body timeout: the app's fault, so a
// policy answer (408), whatever the upstream made of the request it got cut.
func (s *Server) bodyStalled(req *http.Request, x *exchange, err error) *http.Response {
	x.step, x.err = StepPolicy, err
	return refusal(req, http.StatusRequestTimeout, fmt.Sprintf("tokenproxy: the request body made no progress for %s, "+
		"so the request was cut off; the upstream got it incomplete or not at all\n", s.opts.RequestBodyTimeout))
}

// errorResponse is an answer of tokenproxy's own; step goes into X-Tokenproxy-Error.
func errorResponse(req *http.Request, status int, step string, route *config.Route, body string) *http.Response {
	resp := refusal(req, status, body)
	resp.Header.Set("X-Tokenproxy-Error", step)
	if route != nil {
		resp.Header.Set("X-Tokenproxy-Route", route.Name)
	}
	return resp
}

// refusal is a small text answer marked X-Tokenproxy-Error: policy.
func refusal(req *http.Request, status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status,
		Status:     strconv.Itoa(status) + " " + http.StatusText(status),
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":       {"text/plain; charset=utf-8"},
			"X-Tokenproxy-Error": {StepPolicy},
		},
		ContentLength: int64(len(body)),
		Body:          io.NopCloser(strings.NewReader(body)),
		Request:       req,
	}
}

func unmatchedMessage(host string) string {
	return fmt.Sprintf("tokenproxy: %s matches no route and routes.yaml says unmatched: reject\n", host)
}
