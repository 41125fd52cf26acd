package testkit

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Received is what an upstream saw of one request.
type Received struct {
	Method, RequestURI, Host, Proto string
	Header                          http.Header
	BodySHA                         string // of the body, unless the handler reads it (UpstreamOptions.ReadsBody)
	BodyLen                         int64
	TLS                             bool
}

// UpstreamOptions shape an upstream.
type UpstreamOptions struct {
	// Handler answers each request after it is recorded; nil answers "hello from upstream" with
	// X-Upstream: yes.
	Handler http.HandlerFunc
	// ReadsBody leaves the body to Handler; otherwise it is read and hashed before Handler runs.
	ReadsBody bool
	// Cert makes the upstream speak TLS with it, offering HTTP/2 as suppliers do.
	Cert *tls.Certificate
	// MaxHeaderBytes is the server's limit; 0 is net/http's default.
	MaxHeaderBytes int
}

// Upstream is an httptest server that records every request before its handler answers.
type Upstream struct {
	*httptest.Server
	mu  sync.Mutex
	got []Received
}

// NewUpstream starts an upstream that t stops when it ends.
func NewUpstream(t testing.TB, o UpstreamOptions) *Upstream {
	u := &Upstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := Received{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Proto: r.Proto, Header: r.Header.Clone(), TLS: r.TLS != nil}
		if !o.ReadsBody {
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			rec.BodySHA, rec.BodyLen = hex.EncodeToString(h.Sum(nil)), n
		}
		u.mu.Lock()
		u.got = append(u.got, rec)
		u.mu.Unlock()
		if o.Handler == nil {
			w.Header().Set("X-Upstream", "yes")
			_, _ = io.WriteString(w, "hello from upstream")
			return
		}
		o.Handler(w, r)
	}))
	u.Config.MaxHeaderBytes = o.MaxHeaderBytes
	if o.Cert != nil {
		u.TLS = &tls.Config{Certificates: []tls.Certificate{*o.Cert}}
		u.EnableHTTP2 = true
		u.StartTLS()
	} else {
		u.Start()
	}
	t.Cleanup(u.Close)
	return u
}

// Requests returns what the upstream received, in order.
func (u *Upstream) Requests() []Received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Received(nil), u.got...)
}

// Last returns the last request received.
func (u *Upstream) Last(t testing.TB) Received {
	t.Helper()
	got := u.Requests()
	require.NotEmpty(t, got, "the upstream received no request")
	return got[len(got)-1]
}
