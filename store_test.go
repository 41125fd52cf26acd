package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

const storeSecretKey = "TOKENPROXY_SECRET_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// Two sidecars configured with one Redis share the token: the token endpoint is asked once for both, each
// shows the store in /routes and counts its calls in /metrics, and neither logs the token.
func TestTwoBinariesShareATokenThroughRedis(t *testing.T) {
	redis := testkit.StartRedis(t)
	supplier := authEcho(t)
	tokens := newOpsTokens(t, map[string]string{opsSecret: "tok-a"})
	config := writeFile(t, t.TempDir(), "routes.yaml", "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nstore: redis://"+redis.Addr+"/0\nroutes:\n"+
		routeYAML("s", supplier.Listener.Addr().String(), tokens.URL, ""))
	one := startArgs(t, []string{"-config", config}, storeSecretKey)
	two := startArgs(t, []string{"-config", config}, storeSecretKey)

	for _, r := range []*running{one, two} {
		status, body := getBody(t, proxyClient(r.addr), supplier.URL+"/x")
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, "auth=Bearer tok-a-1", body)
	}
	assert.EqualValues(t, 1, tokens.count.Load(), "one token for both sidecars")

	for _, r := range []*running{one, two} {
		resp, err := http.Get("http://" + r.admin + "/routes")
		require.NoError(t, err)
		var got struct {
			Store struct {
				Kind, Where string
				Healthy     bool
			}
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		resp.Body.Close()
		assert.Equal(t, "redis", got.Store.Kind)
		assert.Equal(t, "redis://"+redis.Addr+"/0", got.Store.Where)
		assert.True(t, got.Store.Healthy)
	}
	_, text := scrape(t, two.admin)
	assert.Contains(t, text, `tokenproxy_store_operations_total{op="load",result="ok"}`)
	_, text = scrape(t, one.admin)
	assert.Contains(t, text, `tokenproxy_store_operations_total{op="save",result="ok"} 1`)
	for _, r := range []*running{one, two} {
		require.NoError(t, r.stop(t))
		assert.NotContains(t, r.logs(), "tok-a-1")
		assert.NotContains(t, r.logs(), opsSecret)
	}
}

// A store without the secret key is a start-up error: tokens would leave the process unsealed.
func TestAStoreWithoutASecretKeyStopsStartUp(t *testing.T) {
	config := writeFile(t, t.TempDir(), "routes.yaml", "store: redis://127.0.0.1:1/0\nroutes:\n"+
		routeYAML("s", "supplier.example", "https://login.example/token", ""))
	code, stdout, stderr := runBinary(t, "", nil, "validate", "-config", config)
	assert.Equal(t, 2, code)
	assert.True(t, strings.Contains(stdout+stderr, "routes.yaml:1: store: a shared token store needs the secret key"), stdout+stderr)
}
