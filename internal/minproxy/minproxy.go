// Package minproxy holds the smallest net/http forward proxies for absolute-form requests, the floors the
// benchmarks and the bench harness measure tokenproxy against: New, the smallest correct one, and Bare,
// the least any Go proxy that puts a token on requests does.
package minproxy

import (
	"io"
	"net/http"

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
// copies the answer. It scans no hop-by-hop headers, logs nothing and counts nothing, so it is not a
// correct proxy (a header named in Connection goes through); it is the bar tokenproxy's plain path is held
// to. idlePerHost is its transport's MaxIdleConnsPerHost.
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
		_, _ = io.Copy(w, resp.Body)
	})
}
