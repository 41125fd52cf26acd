package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"time"
)

// intercept serves a CONNECT to a route host: TLS with a leaf certificate for that host, then a net/http
// server of its own for the connection, so header limits, header and idle timeouts, 100-continue,
// Connection: close, HTTP/1.0 and request cancellation are the standard library's. Its requests take the
// same path as plain ones (goproxy, in absolute form).
func (s *Server) intercept(conn *trackedConn, buffered []byte, t *tunnel, snap *snapshot) {
	conn.setKind(ConnIntercepted)
	conn.followIdle(false) // the connection's own server manages its deadlines from here
	leaf, err := snap.leaves.For(t.host.Name())
	if err != nil {
		s.log.Error("cannot make a certificate for an intercepted host", "host", t.host.String(), "error", err)
		_ = conn.Close()
		return
	}
	tlsConn := tls.Server(newPrefixConn(conn, buffered), &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return leaf, nil },
		// HTTP/2 when the app offers it (gRPC needs it); the connection's server speaks whichever was agreed.
		NextProtos: []string{"h2", "http/1.1"},
		MinVersion: tls.VersionTLS12,
	})
	_ = conn.SetDeadline(time.Now().Add(s.opts.ReadHeaderTimeout))
	if err := tlsConn.Handshake(); err != nil {
		s.handshakeFailed(conn, t, snap, err)
		_ = conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})

	base := context.WithValue(context.Background(), tunnelKey{}, t)
	if tlsConn.ConnectionState().NegotiatedProtocol != "h2" { // HTTP/2 streams get a trace each
		base = httptrace.WithClientTrace(base, &conn.trace)
	}
	srv := &http.Server{
		MaxHeaderBytes:    MaxHeaderBytes,
		Handler:           http.HandlerFunc(s.serveIntercepted),
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		IdleTimeout:       s.opts.ClientIdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		// Each stream can hold an upstream answer's window (UpstreamStreamWindow) while its app reads nothing.
		HTTP2:       &http.HTTP2Config{MaxConcurrentStreams: MaxStreamsPerConn},
		BaseContext: func(net.Listener) context.Context { return base },
		ConnState: func(_ net.Conn, state http.ConnState) {
			if state == http.StateHijacked { // an upgrade (websocket): it lives while it carries bytes
				conn.followIdle(true)
			}
		},
	}
	if !s.conns.addServer(srv, s.draining.Load()) { // shutting down
		_ = tlsConn.Close()
		return
	}
	defer s.conns.removeServer(srv)
	l := newOneConnListener(tlsConn, conn.closed)
	_ = srv.Serve(l)
	if !l.taken { // shutdown began before the connection was served
		_ = tlsConn.Close()
	}
	<-conn.closed // Serve returns when shutdown closes the listener; the connection may still finish a request

}

// serveIntercepted hands a request that arrived inside an intercepted connection to the request path in
// absolute form.
func (s *Server) serveIntercepted(w http.ResponseWriter, r *http.Request) {
	t := tunnelFrom(r.Context())
	if r.Method == http.MethodConnect {
		http.Error(w, "tokenproxy: CONNECT inside an intercepted connection is not supported", http.StatusMethodNotAllowed)
		return
	}
	if b := s.watchBody(w, r); b != nil {
		defer b.end()
	}
	r.URL.Scheme = "https"
	if r.URL.Host == "" { // origin-form, as apps send it; an absolute-form URL keeps its own host
		r.URL.Host = r.Host
	}
	if r.URL.Host == "" { // HTTP/1.0 without Host
		r.URL.Host = t.host.Authority()
	}
	if r.ProtoMajor != 1 { // HTTP/2 serves requests side by side: no per-connection answer slot
		sw := newStreamWriter(w, s.opts.ClientIdleTimeout)
		defer sw.end()
		s.gp.ServeHTTP(sw, r)
		return
	}
	t.conn.answer = w
	defer func() { t.conn.answer = nil }()
	s.gp.ServeHTTP(w, r)
}

type tunnelKey struct{}

// tunnelFrom returns the intercepted connection a request arrived on, or nil for a plain request.
func tunnelFrom(ctx context.Context) *tunnel {
	t, _ := ctx.Value(tunnelKey{}).(*tunnel)
	return t
}

// handshakeFailed explains a failed TLS handshake on an intercepted connection. An app that does not
// trust the CA is the most common deployment mistake, so it gets a warning that names the file to trust.
func (s *Server) handshakeFailed(conn net.Conn, t *tunnel, snap *snapshot, err error) {
	var rhe tls.RecordHeaderError
	var oe *net.OpError
	switch {
	case errors.As(err, &rhe) && rhe.Conn != nil:
		// Plain HTTP inside a CONNECT would carry the route's token unencrypted.
		s.log.Warn("request refused: plain http inside an intercepted tunnel", "host", t.host.String())
		s.metrics.Request(t.route, http.StatusBadRequest, time.Since(t.opened))
		s.metrics.Error(t.route, StepPolicy)
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		body := fmt.Sprintf("tokenproxy: the connection opened (CONNECT) for %s must speak TLS; send https:// requests through it\n", t.host.String())
		_, _ = io.WriteString(rhe.Conn, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"+
			"X-Tokenproxy-Error: policy\r\nConnection: close\r\n"+fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))+body)
	case errors.As(err, &oe) && (oe.Op == "remote error" || oe.Op == "local error" && strings.Contains(oe.Err.Error(), "bad record MAC")):
		// The app rejected the certificate tokenproxy presented: it does not trust the interception CA. Go
		// clients say so in an alert; OpenSSL ones (curl, Python) send the alert before encrypting, which
		// reads here as a bad record MAC.
		s.log.Warn("the app refused tokenproxy's certificate: it does not trust the interception CA",
			"host", t.host.String(), "ca_cert", snap.cfg.MITM.CertFile, "error", err,
			"hint", "make the app trust "+snap.cfg.MITM.CertFile+" (bundle.pem beside it where the app's setting replaces "+
				"the default roots, truststore.p12 for Java; see README: Point your client at it)")
	default:
		level := slog.LevelInfo
		if errors.Is(err, io.EOF) {
			level = slog.LevelDebug // the app went away without a word
		}
		s.log.Log(context.Background(), level, "TLS handshake with the app failed", "host", t.host.String(), "error", err)
	}
}

// oneConnListener hands one connection to an http.Server, then blocks until that connection or the
// listener is closed.
type oneConnListener struct {
	conn   net.Conn
	taken  bool
	closed <-chan struct{} // the connection is closed
	done   chan struct{}   // the listener is closed
	once   sync.Once
}

func newOneConnListener(c net.Conn, closed <-chan struct{}) *oneConnListener {
	return &oneConnListener{conn: c, closed: closed, done: make(chan struct{})}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if !l.taken {
		l.taken = true
		return l.conn, nil
	}
	select {
	case <-l.closed:
	case <-l.done:
	}
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }
