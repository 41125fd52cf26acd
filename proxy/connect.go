package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/tokenproxy/tokenproxy/internal/hostname"
)

// serveConnect answers a CONNECT: a route host is intercepted (decrypted with a leaf of the CA, its
// requests served like plain ones), any other host is tunnelled byte for byte, or refused.
func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	snap := s.snap.Load()
	x := &exchange{snap: snap, start: start, method: http.MethodConnect, host: r.Host}
	// The CONNECT target in its one canonical form: what is matched is what is dialled or intercepted.
	target, err := hostname.Parse(r.Host, "443")
	if err != nil {
		s.refuseConnect(w, x, http.StatusBadRequest, fmt.Sprintf("tokenproxy: the CONNECT target %s cannot be reached: %v\n",
			strconv.Quote(r.Host), err))
		return
	}
	host := target.String()
	x.host = host
	route := snap.cfg.Match(target)
	x.route = route
	client, denied := s.admission(x, r)
	if denied != nil {
		s.answer(w, x, denied, true)
		return
	}
	switch {
	case route != nil && snap.cfg.MITM == nil:
		s.refuseConnect(w, x, http.StatusForbidden, fmt.Sprintf(
			"tokenproxy: %s belongs to route %q, but routes.yaml has no mitm section, so https requests to it "+
				"cannot get a token. Add mitm: {caCert, caKey} (tokenproxy ca -out DIR makes a CA), or send the "+
				"request as plain http:// and set upstreamTLS: true on the route.\n", host, route.Name))
		return
	case route == nil && snap.cfg.RejectUnmatched:
		s.refuseConnect(w, x, http.StatusForbidden, unmatchedMessage(host))
		return
	case route != nil:
		conn, buffered, ok := s.hijack(w)
		if !ok {
			return
		}
		t := &tunnel{host: target, conn: conn, route: route.Name, opened: start}
		if client != nil {
			t.client, t.username, t.password = client.Name, client.Username, client.Password
		}
		s.intercept(conn, buffered, t, snap)
		return
	}

	// A tunnel: reach the target first, so an unreachable one is still answered with a status.
	up, err := s.guard.dialUnmatched(r.Context(), "tcp", host)
	if err != nil {
		s.answer(w, x, s.upstreamFailure(r, x, fmt.Errorf("cannot reach %s: %w", host, err)), true)
		return
	}
	conn, buffered, ok := s.hijack(w)
	if !ok {
		_ = up.Close()
		return
	}
	// The app was answered 200: a tunnel counts as one request, timed to its opening. (An intercepted
	// CONNECT does not: its requests inside count, each on its own.)
	s.metrics.Request(routeName(nil), http.StatusOK, time.Since(start))
	s.relay(conn, buffered, up, host, start)
}

// hijack takes the connection over from net/http and answers the CONNECT with 200. buffered holds what
// the app already sent after its CONNECT (often the TLS ClientHello, in the same packet).
func (s *Server) hijack(w http.ResponseWriter) (conn *trackedConn, buffered []byte, ok bool) {
	raw, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.log.Error("cannot take over the CONNECT connection", "error", err)
		return nil, nil, false
	}
	conn, isTracked := raw.(*trackedConn)
	if !isTracked {
		// Served outside Serve (a test calling ServeHTTP): track it anyway.
		conn = newTrackedConn(raw, s.opts.ClientIdleTimeout, s.conns)
		conn.kind.Store(ConnPlain)
		s.metrics.ConnectionOpened(ConnPlain)
	}
	if n := brw.Reader.Buffered(); n > 0 {
		buffered, _ = brw.Reader.Peek(n)
		buffered = append([]byte(nil), buffered...)
	}
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		_ = conn.Close()
		return nil, nil, false
	}
	return conn, buffered, true
}

// refuseConnect answers a CONNECT with one of tokenproxy's refusals and closes the connection.
func (s *Server) refuseConnect(w http.ResponseWriter, x *exchange, status int, body string) {
	x.step = StepPolicy
	s.answer(w, x, refusal(nil, status, body), true)
}

// answer writes one of tokenproxy's own answers straight to the app, outside goproxy, and ends the
// exchange; with closeConn the connection closes after it (a refused CONNECT carries nothing more).
func (s *Server) answer(w http.ResponseWriter, x *exchange, resp *http.Response, closeConn bool) {
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	if closeConn {
		w.Header().Set("Connection", "close")
	}
	w.WriteHeader(resp.StatusCode)
	n, _ := io.Copy(w, resp.Body)
	x.status = resp.StatusCode
	x.received.Store(n)
	s.done(x)
}

// prefixConn is a connection whose first reads return bytes that were already read from it.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func newPrefixConn(c net.Conn, prefix []byte) net.Conn {
	if len(prefix) == 0 {
		return c
	}
	return &prefixConn{Conn: c, r: io.MultiReader(bytes.NewReader(prefix), c)}
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// tunnel is an intercepted connection: the CONNECT target its requests must stay on.
type tunnel struct {
	host   hostname.Host // the CONNECT target
	conn   *trackedConn
	client string // the client the clients rules let in; empty without rules
	// username and password are the client's credentials when the CONNECT was let in: its requests are
	// refused once a reload changes them.
	username, password string
	route              string    // the route the CONNECT target matched
	opened             time.Time // when the CONNECT arrived
}
