// Package testkit is what tokenproxy's tests share: a clock they move by hand, certificates, a log sink
// safe for concurrent writers, and a token endpoint that records what it was asked.
package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Clock is a clock the test moves by hand.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Cert is a certificate with its key, as a tls.Certificate, parsed, and as PEM.
type Cert struct {
	TLS  *tls.Certificate
	Leaf *x509.Certificate
	PEM  []byte
	key  *ecdsa.PrivateKey
}

// Pool returns a pool trusting the certificate.
func (c *Cert) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(c.Leaf)
	return pool
}

// SelfSigned makes an ECDSA certificate, its own root, for names (DNS names or IP addresses; 127.0.0.1 is
// always among them), usable to serve and to authenticate a client.
func SelfSigned(t testing.TB, names ...string) *Cert {
	t.Helper()
	c, err := NewCert(names, true, nil)
	require.NoError(t, err)
	return c
}

// CA makes a certificate authority standing for the roots a client trusts already.
func CA(t testing.TB, name string) *Cert {
	t.Helper()
	c, err := NewCert([]string{name}, true, nil)
	require.NoError(t, err)
	return c
}

// Issue makes a server and client leaf for names signed by the CA c.
func (c *Cert) Issue(t testing.TB, names ...string) *Cert {
	t.Helper()
	leaf, err := NewCert(names, false, c)
	require.NoError(t, err)
	return leaf
}

// NewCert makes an ECDSA certificate for names: its own root when parent is nil, a CA when isCA is set.
// Outside tests (the bench harness) it is what SelfSigned, CA and Issue call.
func NewCert(names []string, isCA bool, parent *Cert) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.Leaf, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Cert{
		TLS:  &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		Leaf: leaf,
		PEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  key,
	}, nil
}

// KeyPEM is the certificate's private key as PKCS #8 PEM.
func (c *Cert) KeyPEM(t testing.TB) []byte {
	b, err := c.KeyPEMBytes()
	require.NoError(t, err)
	return b
}

// KeyPEMBytes is KeyPEM outside tests.
func (c *Cert) KeyPEMBytes() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// LogBuffer is a log sink safe for concurrent writers.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TokenRequest is what a token endpoint received.
type TokenRequest struct {
	Path   string
	Header http.Header
	Body   string
	// Form holds the fields of a form body, or the string fields of a JSON object.
	Form url.Values
}

// BasicAuth returns the request's HTTP Basic credentials.
func (r TokenRequest) BasicAuth() (user, password string, ok bool) {
	req := http.Request{Header: r.Header}
	return req.BasicAuth()
}

// TokenServer is a token endpoint that records every request and answers it with Answer.
type TokenServer struct {
	*httptest.Server
	Count  atomic.Int64
	mu     sync.Mutex
	got    []TokenRequest
	answer func(n int64, req TokenRequest, w http.ResponseWriter)
}

// NewTokenServer starts a token endpoint; answer writes the answer to the n-th request (from 1).
func NewTokenServer(t testing.TB, answer func(n int64, req TokenRequest, w http.ResponseWriter)) *TokenServer {
	ts := &TokenServer{answer: answer}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := TokenRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: string(body), Form: decodeForm(r.Header.Get("Content-Type"), body)}
		ts.mu.Lock()
		ts.got = append(ts.got, req)
		ts.mu.Unlock()
		n := ts.Count.Add(1)
		if ts.answer != nil {
			ts.answer(n, req, w)
		}
	}))
	t.Cleanup(ts.Close)
	return ts
}

// Requests returns what the endpoint received, in order.
func (ts *TokenServer) Requests() []TokenRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]TokenRequest(nil), ts.got...)
}

// Last returns the last request received.
func (ts *TokenServer) Last(t testing.TB) TokenRequest {
	t.Helper()
	got := ts.Requests()
	require.NotEmpty(t, got, "the token endpoint received no request")
	return got[len(got)-1]
}

// decodeForm reads the fields of a token request body, form or JSON.
func decodeForm(contentType string, body []byte) url.Values {
	if strings.HasPrefix(contentType, "application/json") {
		var obj map[string]any
		form := url.Values{}
		if json.Unmarshal(body, &obj) == nil {
			for k, v := range obj {
				if s, ok := v.(string); ok {
					form.Set(k, s)
				}
			}
		}
		return form
	}
	form, _ := url.ParseQuery(string(body))
	return form
}
