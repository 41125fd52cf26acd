package check

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

func TestMarksAreColouredOnATerminal(t *testing.T) {
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"access_token":"t"}`)
	}))
	defer tokens.Close()
	supplier := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Token") != "t" || r.Header.Get("X-Api-Key") != "k" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer supplier.Close()
	cfg, err := config.Parse("routes.yaml", []byte(`
routes:
  - {name: r, hosts: ["`+supplier.Listener.Addr().String()+`"], tokenUrl: "`+tokens.URL+`", clientId: c, clientSecret: s, header: X-Token, prefix: "", headers: {X-Api-Key: k}}
  - {name: elsewhere, hosts: [x.example], tokenUrl: "`+tokens.URL+`", clientId: c, clientSecret: s}
`), config.LoadOptions{})
	require.NoError(t, err)
	opts := Options{Color: true, URL: supplier.URL, Client: supplier.Client(),
		Fetcher: func(r *config.Route) (*tokensource.Fetcher, error) {
			return tokensource.NewFetcher(r.Token, tokensource.Options{})
		}}

	var out strings.Builder
	assert.True(t, Run(context.Background(), &out, cfg, opts), out.String())
	assert.Contains(t, out.String(), "\x1b[32m✔\x1b[0m token:")
	assert.Contains(t, out.String(), "\x1b[32m✔\x1b[0m request:", "the route's header, prefix and headers reached the supplier")
	assert.Contains(t, out.String(), "route elsewhere (x.example)\n  \x1b[32m✔\x1b[0m token:")
	assert.Contains(t, out.String(), "request: skipped, "+supplier.URL+" is not one of this route's hosts",
		"a route's token never goes to a host of another route")
	assert.Equal(t, 1, strings.Count(out.String(), "request: GET"))

	// Named explicitly, a route whose hosts do not include the URL fails instead of sending its token.
	out.Reset()
	opts.Route = "elsewhere"
	assert.False(t, Run(context.Background(), &out, cfg, opts))
	assert.Contains(t, out.String(), "\x1b[31m✘\x1b[0m request: "+supplier.URL+" is not one of this route's hosts; its token is not sent there")
	opts.Route = "r"

	out.Reset()
	supplier.Close()
	opts.URL = supplier.URL
	assert.False(t, Run(context.Background(), &out, cfg, opts))
	assert.Contains(t, out.String(), "\x1b[31m✘\x1b[0m request:")
	assert.Contains(t, out.String(), "hint: the supplier could not be reached")
}

// check never follows a redirect: the route's token and API keys would go to whatever host it names.
func TestRedirectsAreReportedNotFollowed(t *testing.T) {
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"access_token":"t"}`)
	}))
	defer tokens.Close()
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
	}))
	defer other.Close()
	supplier := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/collect?leak=1", http.StatusFound)
	}))
	defer supplier.Close()
	cfg, err := config.Parse("routes.yaml", []byte(`
routes:
  - {name: r, hosts: ["`+supplier.Listener.Addr().String()+`"], tokenUrl: "`+tokens.URL+`", clientId: c, clientSecret: s, header: X-Token, prefix: "", headers: {X-Api-Key: k}}
`), config.LoadOptions{})
	require.NoError(t, err)
	var out strings.Builder
	ok := Run(context.Background(), &out, cfg, Options{URL: supplier.URL + "/start", Client: supplier.Client(),
		Fetcher: func(r *config.Route) (*tokensource.Fetcher, error) {
			return tokensource.NewFetcher(r.Token, tokensource.Options{})
		}})
	assert.False(t, ok, "a redirect is not a pass")
	assert.Contains(t, out.String(), "✘ request: GET "+supplier.URL+"/start answered 302")
	assert.Contains(t, out.String(), "redirects to "+other.URL+"/collect; not followed")
	assert.NotContains(t, out.String(), "leak=1", "no query")
	assert.Zero(t, elsewhere.Load(), "the other host never saw the token or the API key")
}

// tlsSupplier serves 200 over TLS with cert, and counts the requests that reached it.
func tlsSupplier(t *testing.T, cert *tls.Certificate) (*httptest.Server, *atomic.Int64) {
	var reached atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s, &reached
}

// expiredCert is a self-signed certificate for 127.0.0.1 that expired an hour ago.
func expiredCert(t *testing.T) *testkit.Cert {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "expired"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testkit.Cert{TLS: &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, Leaf: leaf}
}

// A certificate check does not accept is a matter of trust, names or validity, and the hint says which;
// only a request that passed is followed by the note on what a 2xx proves.
func TestTLSFailuresGetTheirOwnHints(t *testing.T) {
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"access_token":"t"}`)
	}))
	defer tokens.Close()
	ca := testkit.CA(t, "Private Supplier CA")
	trusting := func(pool *x509.CertPool) *http.Client {
		return &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	run := func(supplierHost, url string, client *http.Client) (bool, string) {
		cfg, err := config.Parse("routes.yaml", []byte(`
routes:
  - {name: r, hosts: ["`+supplierHost+`"], tokenUrl: "`+tokens.URL+`", clientId: c, clientSecret: s}
`), config.LoadOptions{})
		require.NoError(t, err)
		var out strings.Builder
		ok := Run(context.Background(), &out, cfg, Options{Route: "r", URL: url, Client: client,
			Fetcher: func(r *config.Route) (*tokensource.Fetcher, error) {
				return tokensource.NewFetcher(r.Token, tokensource.Options{})
			}})
		return ok, out.String()
	}
	const note = "note: a 2xx proves"

	// Signed by a CA this machine's roots do not hold: SSL_CERT_FILE and the issuer, not DNS and firewalls.
	private, reached := tlsSupplier(t, ca.Issue(t, "supplier.test").TLS)
	ok, out := run(private.Listener.Addr().String(), private.URL+"/ping", &http.Client{Transport: &http.Transport{Proxy: nil}})
	assert.False(t, ok)
	assert.Contains(t, out, "✘ request: GET "+private.URL+"/ping failed after ")
	assert.Contains(t, out, "  hint: the supplier's certificate is issued by \"CN=Private Supplier CA\", which this machine's roots do not include: "+
		"if it is a private CA, add its certificate to the file SSL_CERT_FILE names (or a directory in SSL_CERT_DIR)")
	assert.NotContains(t, out, "DNS and firewalls")
	assert.NotContains(t, out, note)
	assert.Zero(t, reached.Load(), "no request was sent")

	// The same supplier once its CA is trusted: passed, with the note.
	ok, out = run(private.Listener.Addr().String(), private.URL+"/ping", trusting(ca.Pool()))
	assert.True(t, ok, out)
	assert.Contains(t, out, "✔ request: GET "+private.URL+"/ping answered 200")
	assert.Contains(t, out, note)

	// A certificate for other names (supplier.test and 127.0.0.1), reached as localhost.
	port := private.Listener.Addr().(*net.TCPAddr).Port
	byName := fmt.Sprintf("localhost:%d", port)
	ok, out = run(byName, "https://"+byName+"/ping", trusting(ca.Pool()))
	assert.False(t, ok)
	assert.Contains(t, out, "  hint: the supplier's certificate is for \"supplier.test\", 127.0.0.1, not \"localhost\": "+
		"name the supplier in the URL (and in the route's hosts) by a name its certificate is for")
	assert.NotContains(t, out, note)

	// Expired, though trusted.
	old := expiredCert(t)
	expired, _ := tlsSupplier(t, old.TLS)
	ok, out = run(expired.Listener.Addr().String(), expired.URL+"/ping", trusting(old.Pool()))
	assert.False(t, ok)
	assert.Contains(t, out, "  hint: a certificate of the supplier's chain has expired or is not valid yet: check this machine's clock")
	assert.NotContains(t, out, note)

	// Nothing listens: the network hint stays.
	expired.Close()
	ok, out = run(expired.Listener.Addr().String(), expired.URL+"/ping", trusting(old.Pool()))
	assert.False(t, ok)
	assert.Contains(t, out, "  hint: the supplier could not be reached; check the URL, DNS and firewalls")
	assert.NotContains(t, out, note)
}
