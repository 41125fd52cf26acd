package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/mitm"
)

// confinement is a running proxy whose dialler sends every host to one catch-all upstream (TLS with a
// certificate for whatever SNI it is asked, and plain), which records for each request the address the
// proxy dialled for its connection, the SNI and the Host it carried, and its token.
type confinement struct {
	proxyAddr string
	cfg       *config.Config
	appPool   *x509.CertPool // trusts tokenproxy's CA and the upstream's, as an app behind the proxy would

	mu     sync.Mutex
	dialed map[string]string // the proxy's local address of an upstream connection → the address it dialled
	seen   []arrival
}

// arrival is one request as the catch-all upstream saw it.
type arrival struct{ dialed, sni, host, authorization string }

const confinementRoutes = `
unmatched: forward
mitm: {caCert: ca/ca.crt, caKey: ca/ca.key}
routes:
  - name: a
    hosts: [supplier.test, "*.wild.test"]
    tokenUrl: %[1]s/a
    clientId: a
    clientSecret: secret-a-0123456789
  - name: b
    hosts: ["other.test:8443", "bücher.test", "127.0.0.1:9"]
    tokenUrl: %[1]s/b
    clientId: b
    clientSecret: secret-b-0123456789
  - name: c
    hosts: ["plain.test:80"]
    tokenUrl: %[1]s/c
    clientId: c
    clientSecret: secret-c-0123456789
    upstreamTLS: true
`

func newConfinement(tb testing.TB) *confinement {
	c := &confinement{dialed: map[string]string{}}
	tokens := testkit.NewTokenServer(tb, func(n int64, req testkit.TokenRequest, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		// The token names its route: a token that arrives anywhere tells whose it is.
		_, _ = fmt.Fprintf(w, `{"access_token":"route-%s-%d","token_type":"Bearer","expires_in":3600}`, strings.TrimPrefix(req.Path, "/"), n)
	})
	dir := tb.TempDir()
	caFile, _, err := mitm.WriteCA(filepath.Join(dir, "ca"))
	if err != nil {
		tb.Fatal(err)
	}
	c.cfg, err = config.Parse(filepath.Join(dir, "routes.yaml"), []byte(fmt.Sprintf(confinementRoutes, tokens.URL)), config.LoadOptions{ParseCA: mitm.ParseCA})
	if err != nil {
		tb.Fatal(err)
	}
	upCA := testkit.CA(tb, "catch-all upstream CA")
	var leaves sync.Map
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := arrival{host: r.Host, authorization: r.Header.Get("Authorization")}
		if r.TLS != nil {
			a.sni = r.TLS.ServerName
		}
		c.mu.Lock()
		a.dialed = c.dialed[r.RemoteAddr]
		c.seen = append(c.seen, a)
		c.mu.Unlock()
		_, _ = io.WriteString(w, "catch-all")
	})
	tlsUp := httptest.NewUnstartedServer(record)
	tlsUp.EnableHTTP2 = true
	tlsUp.TLS = &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		name := hello.ServerName
		if name == "" {
			name = "127.0.0.1"
		}
		if leaf, ok := leaves.Load(name); ok {
			return leaf.(*tls.Certificate), nil
		}
		leaf, err := testkit.NewCert([]string{name}, false, upCA)
		if err != nil {
			return nil, err
		}
		leaves.Store(name, leaf.TLS)
		return leaf.TLS, nil
	}}
	tlsUp.Config.ErrorLog = log.New(io.Discard, "", 0) // the fuzzer's garbage is no news
	tlsUp.StartTLS()
	tb.Cleanup(tlsUp.Close)
	plainUp := httptest.NewUnstartedServer(record)
	plainUp.Config.ErrorLog = log.New(io.Discard, "", 0)
	plainUp.Start()
	tb.Cleanup(plainUp.Close)

	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, _ := net.SplitHostPort(addr)
		target := plainUp.Listener.Addr().String()
		if port == "443" || port == "8443" {
			target = tlsUp.Listener.Addr().String()
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, target)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.dialed[conn.LocalAddr().String()] = addr
		c.mu.Unlock()
		return conn, nil
	}
	srv, err := New(c.cfg, Options{Logger: slog.New(slog.DiscardHandler), DialContext: dial, RootCAs: upCA.Pool(),
		ReadHeaderTimeout: 2 * time.Second, ResponseHeaderTimeout: 2 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	c.proxyAddr = ln.Addr().String()
	c.appPool = upCA.Pool()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		tb.Fatal(err)
	}
	c.appPool.AppendCertsFromPEM(caPEM)
	return c
}

// tryAll sends target through every way a request reaches the proxy. Failures are expected for most
// inputs: only what reached the upstream matters.
func (c *confinement) tryAll(target string) {
	oneLine := strings.NewReplacer("\r", "", "\n", "").Replace(target)
	c.plain("GET http://" + oneLine + "/x HTTP/1.1\r\nHost: " + oneLine + "\r\n\r\n")
	c.plain("GET http://" + oneLine + "/x HTTP/1.1\r\nHost: supplier.test\r\n\r\n")
	c.inTunnel(oneLine, sniOf(oneLine), "GET /x HTTP/1.1\r\nHost: "+oneLine+"\r\n\r\n")
	for _, tunnel := range []string{"supplier.test:443", "other.test:8443"} {
		c.inTunnel(tunnel, sniOf(tunnel), "GET https://"+oneLine+"/x HTTP/1.1\r\nHost: "+oneLine+"\r\n\r\n")
		c.inTunnel(tunnel, sniOf(tunnel), "GET /x HTTP/1.1\r\nHost: "+oneLine+"\r\n\r\n")
		c.inH2Tunnel(tunnel, [][2]string{{":authority", target}, {":path", "/x"}})
		c.inH2Tunnel(tunnel, [][2]string{{":authority", strings.TrimSuffix(tunnel, ":443")}, {":path", "https://" + target + "/x"}})
		c.inH2Tunnel(tunnel, [][2]string{{":authority", target}, {":path", "https://" + target + "/x"}})
	}
}

func sniOf(hostport string) string {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return host
}

func (c *confinement) conn() (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", c.proxyAddr, 2*time.Second)
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	}
	return conn, err
}

func (c *confinement) plain(request string) {
	conn, err := c.conn()
	if err != nil {
		return
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, request); err == nil {
		if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
		}
	}
}

// connect opens a CONNECT tunnel to target (the request line as written) and returns it after a 200.
func (c *confinement) connect(target string) (net.Conn, bool) {
	conn, err := c.conn()
	if err != nil {
		return nil, false
	}
	if _, err := io.WriteString(conn, "CONNECT "+target+" HTTP/1.1\r\nHost: connect.invalid\r\n\r\n"); err != nil {
		conn.Close()
		return nil, false
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK || br.Buffered() > 0 {
		conn.Close()
		return nil, false
	}
	return conn, true
}

func (c *confinement) inTunnel(target, sni, request string) {
	conn, ok := c.connect(target)
	if !ok {
		return
	}
	defer conn.Close()
	tc := tls.Client(conn, &tls.Config{ServerName: sni, RootCAs: c.appPool, InsecureSkipVerify: sni == ""})
	if tc.Handshake() != nil {
		return
	}
	if _, err := io.WriteString(tc, request); err == nil {
		if resp, err := http.ReadResponse(bufio.NewReader(tc), nil); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
		}
	}
}

func (c *confinement) inH2Tunnel(target string, fields [][2]string) {
	conn, ok := c.connect(target)
	if !ok {
		return
	}
	defer conn.Close()
	h2, err := startRawH2(conn, sniOf(target), c.appPool)
	if err != nil {
		return
	}
	_, _ = h2.do(append([][2]string{{":method", "GET"}, {":scheme", "https"}}, fields...)...)
}

// tokens is how many requests with a route's token reached the upstream since the last check.
func (c *confinement) tokens() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, a := range c.seen {
		if a.authorization != "" {
			n++
		}
	}
	return n
}

// check fails when a route's token reached the upstream over a connection dialled to a host of no route
// or of another route, or with an SNI or a Host that is not a host of its route.
func (c *confinement) check(t *testing.T, input string) {
	c.mu.Lock()
	seen := c.seen
	c.seen = nil
	c.mu.Unlock()
	for _, a := range seen {
		if a.authorization == "" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a.authorization, "Bearer route-"), "-")
		if c.cfg.Route(name) == nil {
			t.Fatalf("input %q: the upstream got an Authorization that is no route's token", input)
		}
		_, port, err := net.SplitHostPort(a.dialed)
		if err != nil || ownerOf(a.dialed) != name {
			t.Fatalf("input %q: route %s's token went over a connection dialled to %q", input, name, a.dialed)
		}
		if a.sni != "" && ownerOf(net.JoinHostPort(a.sni, port)) != name {
			t.Fatalf("input %q: route %s's token went with SNI %q (dialled %q)", input, name, a.sni, a.dialed)
		}
		host := a.host
		if _, _, err := net.SplitHostPort(host); err != nil {
			host = net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), port)
		}
		if ownerOf(host) != name {
			t.Fatalf("input %q: route %s's token went with Host %q (dialled %q)", input, name, a.host, a.dialed)
		}
	}
}

// ownerOf is the route whose hosts confinementRoutes names, written out by hand rather than asked of the
// code under test, so that a canonicalisation bug both sides shared could not hide: exact strings, in the
// one canonical form the proxy may dial and send.
func ownerOf(hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return ""
	}
	switch {
	case host == "supplier.test", strings.HasSuffix(host, ".wild.test") && !strings.HasPrefix(host, "."):
		return "a"
	case host == "other.test" && port == "8443", host == "xn--bcher-kva.test", host == "127.0.0.1" && port == "9":
		return "b"
	case host == "plain.test" && port == "80":
		return "c"
	}
	return ""
}

// A route's token goes only to that route's hosts: for any request target, sent plain, as a CONNECT,
// absolute-form inside a tunnel, in Host inside a tunnel, and as HTTP/2 :authority or :path, the address
// the proxy dialled, the SNI and the Host of every request that carried a token name a host of the
// route whose token it is.
func FuzzHostConfinement(f *testing.F) {
	for _, s := range []string{
		"supplier.test", "supplier.test:443", "SUPPLIER.test.", "x.wild.test", "wild.test", "other.test:8443", "other.test",
		"suppl\u0130er.test", "\u0131.wild.test", "\u212A.wild.test", "\u017Fupplier.test", "ｓｕｐｐｌｉｅｒ.test",
		"sup\u200Dplier.test", "sup\u200Cplier.test", "sup\u200Bplier.test", "supplier\u3002test", "b\u00FCcher.test",
		"xn--bcher-kva.test", "suppl%C4%B0er.test", "supplier%2etest", "supplier.test%00", "supplier.test..",
		"[::1]:9", "[::ffff:127.0.0.1]:9", "127.0.0.1:9", "127.0.0.1:09", "127.1:9", "[fe80::1%25eth0]:443",
		"user@supplier.test", "supplier.test@evil.test", "evil.test#@supplier.test", "supplier.test:443:443",
		"SuPpLiEr.TeSt:0443", "supplier.test:", "supplier.test\\evil.test", "evil.test/supplier.test",
		"plain.test", "plain.test:80", "plain.test:443", "PLAIN.test.:080",
	} {
		f.Add(s)
	}
	c := newConfinement(f)
	f.Fuzz(func(t *testing.T, target string) {
		c.tryAll(target)
		c.check(t, target)
	})
}

// The confinement check is not vacuous: a route's own host, however written, gets its token through every
// way of asking (plain, in a tunnel, HTTP/2), and the check sees them.
func TestHostConfinementSeesTheTokensOfRouteHosts(t *testing.T) {
	c := newConfinement(t)
	for _, target := range []string{"supplier.test", "SUPPLIER.test.", "x.wild.test", "\u017Fupplier.test"} {
		c.plain("GET http://" + target + "/x HTTP/1.1\r\nHost: x\r\n\r\n")
		c.inTunnel("supplier.test:443", "supplier.test", "GET /x HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
		c.inH2Tunnel("supplier.test:443", [][2]string{{":authority", target}, {":path", "/x"}})
		got := c.tokens()
		c.check(t, target)
		wantInTunnel := 2
		switch target {
		case "x.wild.test":
			wantInTunnel = 0 // another host than the CONNECT's: 421
		case "\u017Fupplier.test":
			wantInTunnel = 1 // Go's server takes no non-ASCII Host header over HTTP/1.1; :authority is not checked so
		}
		if got != 1+wantInTunnel {
			t.Errorf("%s: %d requests carried a token, want %d", target, got, 1+wantInTunnel)
		}
	}
	c.inTunnel("b\u00FCcher.test:443", "xn--bcher-kva.test", "GET /x HTTP/1.1\r\nHost: xn--bcher-kva.test\r\n\r\n")
	if got := c.tokens(); got != 1 {
		t.Errorf("a route host written in Unicode in the CONNECT: %d requests carried a token, want 1", got)
	}
	c.check(t, "bücher.test")
}
