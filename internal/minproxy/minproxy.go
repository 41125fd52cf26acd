// Package minproxy is the smallest correct net/http forward proxy for absolute-form requests: the floor any
// Go proxy starts from, which the benchmarks and the bench harness measure tokenproxy against.
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
