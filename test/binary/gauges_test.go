package binary

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/mitm"
)

// The gauges of the binary's /metrics follow real traffic: a leaf certificate per intercepted host, the
// intercepted connections the app keeps open, and a tunnel while it is open and not after.
func TestConnectionAndCertificateGaugesFollowTheTraffic(t *testing.T) {
	tokens := newOpsTokens(t, map[string]string{opsSecret: "tok-a"})
	upstream := testkit.SelfSigned(t, "127.0.0.2") // and 127.0.0.1
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "tls auth="+r.Header.Get("Authorization"))
	})
	one := httptest.NewUnstartedServer(echo)
	two := httptest.NewUnstartedServer(echo)
	ln, err := net.Listen("tcp", "127.0.0.2:0") // another intercepted host, not only another port
	require.NoError(t, err)
	two.Listener.Close()
	two.Listener = ln
	for _, s := range []*httptest.Server{one, two} {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{*upstream.TLS}}
		s.StartTLS()
		t.Cleanup(s.Close)
	}
	plain := authEcho(t) // no route: reached through a tunnel

	dir := t.TempDir()
	caFile, _, err := mitm.WriteCA(filepath.Join(dir, "ca"))
	require.NoError(t, err)
	caPEM, err := os.ReadFile(caFile)
	require.NoError(t, err)
	caPool := x509.NewCertPool()
	require.True(t, caPool.AppendCertsFromPEM(caPEM))
	config := writeFile(t, dir, "routes.yaml", "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nmitm: {caCert: ca/ca.crt, caKey: ca/ca.key}\nroutes:\n"+
		routeYAML("one", one.Listener.Addr().String(), tokens.URL, "")+routeYAML("two", two.Listener.Addr().String(), tokens.URL, ""))
	r := start(t, config, "SSL_CERT_FILE="+writeFile(t, dir, "upstream.pem", string(upstream.PEM)), "SSL_CERT_DIR="+t.TempDir())
	gauge := func(name string, labels ...string) func() float64 {
		return func() float64 {
			m, _ := scrape(t, r.admin)
			return value(m, name, labels...)
		}
	}
	certificates := gauge("tokenproxy_certificates_cached")
	intercepted := gauge("tokenproxy_connections", "kind", "intercepted")
	tunnels := gauge("tokenproxy_connections", "kind", "tunnel")
	is := func(g func() float64, want float64) func() bool { return func() bool { return g() == want } }
	assert.Equal(t, 0.0, certificates())
	assert.Equal(t, 0.0, intercepted())
	assert.Equal(t, 0.0, tunnels())

	proxyURL, _ := url.Parse("http://" + r.addr)
	app := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: caPool}}}
	for _, u := range []string{one.URL, two.URL, one.URL} {
		status, body := getBody(t, app, u+"/")
		require.Equal(t, http.StatusOK, status, body)
		require.Equal(t, "tls auth=Bearer tok-a-1", body)
	}
	testkit.WaitFor(t, "the two intercepted connections the app keeps", is(intercepted, 2))
	assert.Equal(t, 2.0, certificates(), "one leaf for each intercepted host")
	assert.Equal(t, 0.0, tunnels())

	// A tunnel to a host without a route: 1 while it is open, 0 once it closed.
	c, err := net.Dial("tcp", r.addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	target := plain.Listener.Addr().String()
	_, err = io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	testkit.WaitFor(t, "the open tunnel", is(tunnels, 1))
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+target+"\r\nAuthorization: Bearer app-own\r\n\r\n")
	require.NoError(t, err)
	resp, err = http.ReadResponse(br, nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "auth=Bearer app-own", string(body), "the tunnel relays the app's bytes untouched")
	assert.Equal(t, 1.0, tunnels())
	assert.Equal(t, 2.0, intercepted())
	require.NoError(t, c.Close())
	testkit.WaitFor(t, "the tunnel closed", is(tunnels, 0))

	app.CloseIdleConnections()
	testkit.WaitFor(t, "the intercepted connections closed", is(intercepted, 0))
	assert.Equal(t, 2.0, certificates(), "the leaves stay cached for the next connections")
	status, _ := getBody(t, app, two.URL+"/")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, 2.0, certificates(), "a host seen before gets no new leaf")
	require.NoError(t, r.stop(t))
}
