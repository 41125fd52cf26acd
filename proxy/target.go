package proxy

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/hostname"
)

// targetOf finds the one canonical host of a plain or intercepted request and writes it back into the
// request, so that the host the route table matches is the one the transport dials, sends as SNI and writes
// in Host. It refuses a host with no canonical form (400), a Host (:authority) naming another host than the
// URL (421), and, inside an intercepted connection, a request for another host than the CONNECT's (421:
// the client opens a connection of its own for it).
func (s *Server) targetOf(req *http.Request, x *exchange) (hostname.Host, *http.Response) {
	defaultPort := config.DefaultPort(req.URL.Scheme)
	h, err := hostname.Parse(req.URL.Host, defaultPort)
	if err != nil {
		return h, s.refuse(req, x, http.StatusBadRequest, fmt.Sprintf(
			"tokenproxy: the host %s cannot be forwarded: %v; nothing was sent\n", strconv.Quote(req.URL.Host), err))
	}
	if req.Host != "" && req.Host != req.URL.Host {
		if named, err := hostname.Parse(req.Host, defaultPort); err != nil || !named.Equal(h) {
			s.log.Warn("request refused: Host differs from the URL's host", "host", h.Authority(), "host_header", req.Host)
			return h, s.misdirected(req, x, fmt.Sprintf(
				"tokenproxy: the request's URL names %s and its Host (:authority) %s; they must name the same host\n",
				h.Authority(), strconv.Quote(req.Host)))
		}
	}
	if t := x.tunnel; t != nil && !h.Equal(t.host) {
		s.log.Warn("request refused: host differs from its tunnel", "tunnel", t.host.String(), "host", h.String())
		return h, s.misdirected(req, x, fmt.Sprintf(
			"tokenproxy: this connection was opened (CONNECT) for %s; a request for %s cannot use it: open a connection for that host\n",
			t.host.String(), h.String()))
	}
	req.URL.Host = h.Authority()
	req.Host = h.Authority()
	x.host = h.Authority()
	return h, nil
}

// misdirected answers 421: the request reached a connection that cannot serve its host (RFC 9110 §15.5.20).
func (s *Server) misdirected(req *http.Request, x *exchange, body string) *http.Response {
	return s.refuse(req, x, http.StatusMisdirectedRequest, body)
}

// asksForAnEcho reports whether a request asks its server to echo it back (TRACE, TRACK), in any case
// (some servers fold method names) or through a method-override header.
func asksForAnEcho(req *http.Request) bool {
	echo := func(m string) bool { return strings.EqualFold(m, http.MethodTrace) || strings.EqualFold(m, "TRACK") }
	if echo(req.Method) {
		return true
	}
	for _, h := range [...]string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"} {
		for _, v := range req.Header[h] {
			if echo(strings.TrimSpace(v)) {
				return true
			}
		}
	}
	return false
}
