package binary

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

// The binary's /metrics has the series the README's increase() alerts use at zero for every route from the
// start, so the first failure is an increase; after a reload, at zero for the routes it adds, and none of a
// route it removes.
func TestAlertSeriesExistAtZeroForEveryRouteInService(t *testing.T) {
	supplier := authEcho(t)
	good := routeYAML("good", supplier.Listener.Addr().String(), "TOKENS", "")
	r := startReloadable(t, good+routeYAML("refused", "refused.test", "TOKENS/refuse", ""), "-reload-interval", "50ms")
	zero := func(route string) {
		t.Helper()
		m, _ := scrape(t, r.admin)
		for _, kind := range []string{"token", "upstream", "policy"} {
			assert.Equal(t, 0.0, value(m, "tokenproxy_errors_total", "route", route, "kind", kind), "%s %s", route, kind)
		}
		assert.Equal(t, 0.0, value(m, "tokenproxy_replays_total", "route", route), route)
		assert.Equal(t, 0.0, value(m, "tokenproxy_token_refusal_backoffs_total", "route", route), route)
	}
	zero("good")
	zero("refused")

	status, _ := getBody(t, proxyClient(r.addr), "http://refused.test/")
	require.Equal(t, http.StatusBadGateway, status)
	testkit.WaitFor(t, "the first token failure counted", func() bool {
		m, _ := scrape(t, r.admin)
		return value(m, "tokenproxy_errors_total", "route", "refused", "kind", "token") == 1
	})

	r.write(t, "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nroutes:\n"+good+routeYAML("added", "added.test", "TOKENS", ""))
	r.waitLog(t, "the reload", `"msg":"configuration reloaded"`)
	zero("good")
	zero("added")
	m, _ := scrape(t, r.admin)
	var left []string
	for name, f := range m {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "route" && l.GetValue() == "refused" {
					left = append(left, name)
				}
			}
		}
	}
	assert.Empty(t, left, "no series of the removed route")
	require.NoError(t, r.stop(t))
}
