package check

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
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
