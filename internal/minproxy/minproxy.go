// Package minproxy holds the smallest net/http forward proxies for absolute-form requests, the floors the
// benchmarks and the bench harness measure tokenproxy against: New, the smallest correct one, and Bare,
// the least any Go proxy that puts a token on requests does.
package minproxy

import (
	"io"
	"net/http"
	"sync"

	"github.com/tokenproxy/tokenproxy/internal/hopbyhop"
)

// New returns the proxy's handler; idlePerHost is its transport's MaxIdleConnsPerHost.
func New(idlePerHost int) http.Handler {
	tr := &http.Transport{MaxIdleConnsPerHost: idlePerHost, DisableCompression: true}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RequestURI = ""
		hopbyhop.Remove(r.Header)
		resp, err := tr.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		hopbyhop.Remove(resp.Header)
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
}

// Bare returns the handler of a proxy that does no more than a hand-written one putting a fixed token on
// every request: it deletes Proxy-Connection, sets Authorization to authorization, sends the request and
// copies the answer. It scans no hop-by-hop headers, sets no deadline, logs nothing and counts nothing, so
// it is not a correct proxy (a header named in Connection goes through); it is the bar tokenproxy's plain
// path is held to. idlePerHost is its transport's MaxIdleConnsPerHost.
//
// The answer is copied through a pooled buffer into the ResponseWriter's own buffer, so a small answer
// leaves in one write with its head, as tokenproxy's do. io.Copy(w, body) would not: on a bare TCP
// connection net/http's ReadFrom writes the head with the first 512 bytes, then hands the rest to the
// connection's ReadFrom, a second write and a 32 KiB buffer per answer, which made this proxy slower than
// tokenproxy for reasons that are no work of either.
func Bare(idlePerHost int, authorization string) http.Handler {
	tr := &http.Transport{MaxIdleConnsPerHost: idlePerHost, DisableCompression: true}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RequestURI = ""
		r.Header.Del("Proxy-Connection")
		r.Header.Set("Authorization", authorization)
		resp, err := tr.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		h := w.Header()
		for k, v := range resp.Header {
			h[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		buf := copyBuffers.Get().(*[]byte)
		_, _ = io.CopyBuffer(writerOnly{w}, resp.Body, *buf)
		copyBuffers.Put(buf)
	})
}

// writerOnly hides the ResponseWriter's ReadFrom from io.CopyBuffer.
type writerOnly struct{ io.Writer }

// copyBuffers are the buffers Bare copies answers through.
var copyBuffers = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}
