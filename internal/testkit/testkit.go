// Package testkit is what tokenproxy's tests share: a clock they move by hand, certificates, a log sink
// safe for concurrent writers, and a token endpoint that records what it was asked.
package testkit

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/certgen"
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

// NewCert makes a certificate for names, valid for a day, to serve and to authenticate a client: its own
// root when parent is nil, a CA when isCA is set. It is what SelfSigned, CA and Issue call, for the tests
// that make certificates where they cannot fail the test at once.
func NewCert(names []string, isCA bool, parent *Cert) (*Cert, error) {
	var signer *tls.Certificate
	if parent != nil {
		signer = parent.TLS
	}
	c, err := certgen.New(certgen.Spec{CommonName: names[0], Hosts: append([]string{"127.0.0.1"}, names...), CA: isCA,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, Valid: 24 * time.Hour}, signer)
	if err != nil {
		return nil, err
	}
	return &Cert{TLS: c, Leaf: c.Leaf, PEM: certgen.CertPEM(c)}, nil
}

// KeyPEM is the certificate's private key as PKCS #8 PEM.
func (c *Cert) KeyPEM(t testing.TB) []byte {
	b, err := certgen.KeyPEM(c.TLS)
	require.NoError(t, err)
	return b
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
