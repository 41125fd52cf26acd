package binary

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
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
	assert.EqualValues(t, 1, tokens.Count.Load(), "one token for both sidecars")

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

// A Redis that asks for TLS and a password: rediss:// verified against SSL_CERT_FILE, the password from
// passwordFile reaching AUTH, and every key under keyPrefix. A wrong password leaves the store unhealthy
// while requests still get their tokens from the replica's own memory.
func TestTheStoreOverTLSWithAPasswordFileAndAKeyPrefix(t *testing.T) {
	cert := testkit.SelfSigned(t, "127.0.0.1")
	redis := testkit.StartRedisWith(t, testkit.RedisOptions{Password: "pw-redis-7", TLS: cert})
	supplier := authEcho(t)
	tokens := newOpsTokens(t, map[string]string{opsSecret: "tok-a"})
	dir := t.TempDir()
	writeFile(t, dir, "redis-password", "pw-redis-7\n")
	writeFile(t, dir, "wrong-password", "guess\n")
	env := []string{storeSecretKey, "SSL_CERT_FILE=" + writeFile(t, dir, "redis.pem", string(cert.PEM)), "SSL_CERT_DIR=" + t.TempDir()}
	configWith := func(name, passwordFile string) string {
		return writeFile(t, dir, name, "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\n"+
			"store: {url: \"rediss://"+redis.Addr+"/0\", passwordFile: "+passwordFile+", keyPrefix: \"team-a:\"}\nroutes:\n"+
			routeYAML("s", supplier.Listener.Addr().String(), tokens.URL, ""))
	}
	storeHealthy := func(r *running) bool {
		resp, err := http.Get("http://" + r.admin + "/routes")
		require.NoError(t, err)
		defer resp.Body.Close()
		var got struct{ Store struct{ Healthy bool } }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		return got.Store.Healthy
	}

	good := configWith("routes.yaml", "redis-password")
	one, two := start(t, good, env...), start(t, good, env...)
	for _, r := range []*running{one, two} {
		status, body := getBody(t, proxyClient(r.addr), supplier.URL+"/x")
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, "auth=Bearer tok-a-1", body)
		// Healthy tells whether the last call to Redis succeeded; on a busy machine one look-up may miss its
		// 50 ms, so the test waits for the store to answer again (each /routes asks it) rather than catch a moment.
		testkit.WaitFor(t, "the store answers", func() bool { return storeHealthy(r) })
	}
	assert.EqualValues(t, 1, tokens.Count.Load(), "one token for both, through TLS and AUTH")

	// What is in Redis: keys under the prefix only, and neither the client id, the secret nor the token.
	client := goredis.NewClient(&goredis.Options{Addr: redis.Addr, Password: "pw-redis-7",
		TLSConfig: &tls.Config{RootCAs: cert.Pool(), ServerName: "127.0.0.1"}})
	defer client.Close()
	keys, err := client.Keys(context.Background(), "*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	for _, k := range keys {
		assert.True(t, strings.HasPrefix(k, "team-a:"), k)
		assert.NotContains(t, k, "ops", "keys are HMACs of the credentials, not the client id")
		v, _ := client.Get(context.Background(), k).Result()
		for _, secret := range []string{opsSecret, "tok-a-1"} {
			assert.NotContains(t, k+v, secret)
		}
	}

	wrong := start(t, configWith("wrong.yaml", "wrong-password"), env...)
	status, body := getBody(t, proxyClient(wrong.addr), supplier.URL+"/y")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "auth=Bearer tok-a-2", body, "Redis refused the password: this replica fetched on its own")
	assert.False(t, storeHealthy(wrong))
	for _, r := range []*running{one, two, wrong} {
		require.NoError(t, r.stop(t))
		assert.NotContains(t, r.logs(), "pw-redis-7")
	}
	assert.Contains(t, wrong.logs(), "WRONGPASS", "the store says why it does not work")
}

// A supplier that refuses every token: once one sidecar has found it out, another sidecar's /routes shows
// the fleet's refusal hold, before that sidecar has served the route at all.
func TestRoutesShowTheFleetsRefusalHold(t *testing.T) {
	redis := testkit.StartRedis(t)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(refusing.Close)
	tokens := newOpsTokens(t, map[string]string{opsSecret: "tok-a"})
	config := writeFile(t, t.TempDir(), "routes.yaml", "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nstore: redis://"+redis.Addr+"/0\nroutes:\n"+
		routeYAML("s", refusing.Listener.Addr().String(), tokens.URL, ""))
	one := startArgs(t, []string{"-config", config}, storeSecretKey)
	two := startArgs(t, []string{"-config", config}, storeSecretKey)
	refusalsHeld := func(r *running) string {
		resp, err := http.Get("http://" + r.admin + "/routes")
		require.NoError(t, err)
		defer resp.Body.Close()
		var got struct {
			Routes []struct {
				Token struct {
					RefusalsBackedOffUntil string `json:"refusalsBackedOffUntil"`
				} `json:"token"`
			} `json:"routes"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		require.Len(t, got.Routes, 1)
		return got.Routes[0].Token.RefusalsBackedOffUntil
	}
	assert.Empty(t, refusalsHeld(two))

	for range 3 { // refused, replayed with a fresh token, refused again: the supplier refuses every token
		status, _ := getBody(t, proxyClient(one.addr), refusing.URL+"/x")
		require.Equal(t, http.StatusUnauthorized, status)
	}
	require.NotEmpty(t, refusalsHeld(one), "the sidecar that found it out holds refusals back")
	held, err := time.Parse(time.RFC3339Nano, refusalsHeld(two))
	require.NoError(t, err, "the other sidecar shows the fleet's hold")
	assert.True(t, held.After(time.Now()))
	for _, r := range []*running{one, two} {
		require.NoError(t, r.stop(t))
	}
}
