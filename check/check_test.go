package check

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/proxy"
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
	cfg, err := proxy.ParseConfig("routes.yaml", []byte(`
routes:
  - {name: r, hosts: [x.example], tokenUrl: "`+tokens.URL+`", clientId: c, clientSecret: s, header: X-Token, prefix: "", headers: {X-Api-Key: k}}
`), proxy.LoadOptions{})
	require.NoError(t, err)
	opts := Options{Color: true, URL: supplier.URL, Client: supplier.Client(),
		Fetcher: func(r *proxy.Route) (*tokensource.Fetcher, error) { return proxy.NewFetcher(r, proxy.Options{}) }}

	var out strings.Builder
	assert.True(t, Run(context.Background(), &out, cfg, opts), out.String())
	assert.Contains(t, out.String(), "\x1b[32m✔\x1b[0m token:")
	assert.Contains(t, out.String(), "\x1b[32m✔\x1b[0m request:", "the route's header, prefix and headers reached the supplier")

	out.Reset()
	supplier.Close()
	opts.URL = supplier.URL
	assert.False(t, Run(context.Background(), &out, cfg, opts))
	assert.Contains(t, out.String(), "\x1b[31m✘\x1b[0m request:")
	assert.Contains(t, out.String(), "hint: the supplier could not be reached")
}
