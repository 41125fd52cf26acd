package authheader

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// twoRoutes are a route with the default header and one with a header and prefix of its own.
func twoRoutes(t *testing.T) (a, b *config.Route) {
	cfg, err := config.Parse("routes.yaml", []byte(`
routes:
  - {name: a, hosts: [a.example], tokenUrl: "https://login.example/token", clientId: c, clientSecret: s}
  - {name: b, hosts: [b.example], tokenUrl: "https://login.example/token", clientId: c, clientSecret: s, header: x-token, prefix: "Token "}
`), config.LoadOptions{})
	require.NoError(t, err)
	return cfg.Route("a"), cfg.Route("b")
}

// The token header replaces whatever the app sent under that name.
func TestSetReplacesTheAppsHeader(t *testing.T) {
	a, b := twoRoutes(t)
	tok := &tokensource.Token{Value: "tok-1"}

	h := http.Header{"Authorization": {"Basic app", "Bearer app"}}
	Set(h, a, tok)
	assert.Equal(t, []string{"Bearer tok-1"}, h.Values("Authorization"))

	Set(h, b, tok)
	assert.Equal(t, []string{"Token tok-1"}, h.Values("X-Token"))
	assert.Equal(t, []string{"Bearer tok-1"}, h.Values("Authorization"), "another route's header is not touched")
	Set(h, a, tok) // the other prefix again: built anew, right
	assert.Equal(t, []string{"Bearer tok-1"}, h.Values("Authorization"))

	h.Add("Authorization", "appended")
	Set(h, a, tok)
	assert.Equal(t, []string{"Bearer tok-1"}, tok.HeaderValue("Bearer "), "an append to one request's header never reaches the shared value")
}

// Writing the token header costs no allocation once the token has built its header value.
func TestSetAllocs(t *testing.T) {
	a, _ := twoRoutes(t)
	tok := &tokensource.Token{Value: "tok-1"}
	h := http.Header{"Authorization": {"Basic app"}}
	Set(h, a, tok)
	assert.Zero(t, testkit.AllocsPerRun(t, 100, func() { Set(h, a, tok) }))
}
