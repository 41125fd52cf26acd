package tokensource

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

func fakeJWT(exp int64) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(fmt.Sprintf(`{"sub":"x","exp":%d}`, exp))) + ".sig"
}

func TestLifetimeSources(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name       string
		cfg        Config
		answer     string
		want       time.Duration
		wantSource string
	}{
		{"expires_in", Config{}, `{"access_token":"a","expires_in":3600}`, time.Hour, "expires_in"},
		{"expires_in string", Config{}, `{"access_token":"a","expires_in":"3600"}`, time.Hour, "expires_in"},
		{"expiresPath", Config{ExpiresPath: "meta.ttl"}, `{"access_token":"a","meta":{"ttl":"900"}}`, 15 * time.Minute, "expiresPath"},
		{"expiresAtPath epoch", Config{ExpiresAtPath: "exp"}, fmt.Sprintf(`{"access_token":"a","exp":%d}`, now.Unix()+600), 10 * time.Minute, "expiresAtPath"},
		{"expiresAtPath epoch string", Config{ExpiresAtPath: "exp"}, fmt.Sprintf(`{"access_token":"a","exp":"%d"}`, now.Unix()+600), 10 * time.Minute, "expiresAtPath"},
		{"expiresAtPath RFC 3339", Config{ExpiresAtPath: "data.expiresAt"},
			`{"access_token":"a","data":{"expiresAt":"` + now.Add(45*time.Minute).UTC().Format(time.RFC3339) + `"}}`, 45 * time.Minute, "expiresAtPath"},
		{"defaultTTL", Config{DefaultTTL: 20 * time.Minute}, `{"access_token":"a"}`, 20 * time.Minute, "defaultTTL"},
		{"defaultTTL only without an answer", Config{DefaultTTL: 20 * time.Minute}, `{"access_token":"a","expires_in":60}`, time.Minute, "expires_in"},
		{"JWT exp", Config{}, `{"access_token":"` + fakeJWT(now.Unix()+1800) + `"}`, 30 * time.Minute, "jwt exp"},
		{"default", Config{}, `{"access_token":"opaque"}`, DefaultLifetime, "default"},
		{"clamp zero", Config{}, `{"access_token":"a","expires_in":0}`, MinLifetime, "expires_in"},
		{"clamp negative", Config{}, `{"access_token":"a","expires_in":-30}`, MinLifetime, "expires_in"},
		{"clamp tiny", Config{}, `{"access_token":"a","expires_in":1}`, MinLifetime, "expires_in"},
		{"clamp absurd", Config{}, `{"access_token":"a","expires_in":"315360000"}`, MaxLifetime, "expires_in"},
		{"clamp overflowing", Config{}, `{"access_token":"a","expires_in":1e20}`, MaxLifetime, "expires_in"},
		{"clamp overflowing string", Config{}, `{"access_token":"a","expires_in":"9.3e9"}`, MaxLifetime, "expires_in"},
		{"NaN is no lifetime", Config{}, `{"access_token":"a","expires_in":"NaN"}`, DefaultLifetime, "default"},
		{"Inf is no lifetime", Config{}, `{"access_token":"a","expires_in":"Inf"}`, DefaultLifetime, "default"},
		{"clamp far expiresAt", Config{ExpiresAtPath: "exp"}, `{"access_token":"a","exp":1e20}`, MaxLifetime, "expiresAtPath"},
		{"clamp past expiresAt", Config{ExpiresAtPath: "exp"}, fmt.Sprintf(`{"access_token":"a","exp":%d}`, now.Unix()-10), MinLifetime, "expiresAtPath"},
		{"clamp JWT long past", Config{}, `{"access_token":"` + fakeJWT(now.Unix()-100) + `"}`, MinLifetime, "jwt exp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTokenServer(t, func(_ int64, w http.ResponseWriter) { _, _ = io.WriteString(w, tt.answer) })
			cfg := tt.cfg
			cfg.TokenURL, cfg.ClientID, cfg.ClientSecret = ts.URL, "c", "s"
			f, err := NewFetcher(cfg, Options{Clock: testkit.NewClock(now)})
			require.NoError(t, err)
			tok, err := f.Fetch(context.Background())
			require.NoError(t, err)
			assert.Equal(t, tt.want, tok.Lifetime())
			assert.Equal(t, tt.wantSource, tok.LifetimeSource)
		})
	}
}

func TestDiscovery(t *testing.T) {
	tests := []struct {
		name    string
		docs    map[string]string // path → body; missing paths answer 404; ISSUER is the issuer URL
		mtls    bool
		want    string // token endpoint, or an error substring
		wantErr bool
	}{
		{"RFC 8414, well-known before the issuer's path", map[string]string{
			"/.well-known/oauth-authorization-server/tenant": `{"issuer":"ISSUER","token_endpoint":"https://as.example/token"}`},
			false, "https://as.example/token", false},
		{"OpenID, appended", map[string]string{"/tenant/.well-known/openid-configuration": `{"token_endpoint":"https://idp.example/oauth2/token"}`},
			false, "https://idp.example/oauth2/token", false},
		{"RFC 8414 appended, as some servers do", map[string]string{"/tenant/.well-known/oauth-authorization-server": `{"token_endpoint":"https://legacy.example/token"}`},
			false, "https://legacy.example/token", false},
		{"RFC 8414 first", map[string]string{
			"/.well-known/oauth-authorization-server/tenant": `{"token_endpoint":"https://first.example/token"}`,
			"/tenant/.well-known/openid-configuration":       `{"token_endpoint":"https://second.example/token"}`}, false, "https://first.example/token", false},
		{"mtls alias for tls-client-auth", map[string]string{"/tenant/.well-known/openid-configuration": `{"token_endpoint":"https://idp.example/token","mtls_endpoint_aliases":{"token_endpoint":"https://mtls.idp.example/token"}}`},
			true, "https://mtls.idp.example/token", false},
		{"mtls alias only for tls-client-auth", map[string]string{"/tenant/.well-known/openid-configuration": `{"token_endpoint":"https://idp.example/token","mtls_endpoint_aliases":{"token_endpoint":"https://mtls.idp.example/token"}}`},
			false, "https://idp.example/token", false},
		{"another issuer is not believed", map[string]string{"/tenant/.well-known/openid-configuration": `{"issuer":"https://evil.example","token_endpoint":"https://evil.example/token"}`},
			false, "openid-configuration: names issuer https://evil.example, not ", true},
		{"another issuer, shown by the rules of an answer", map[string]string{"/tenant/.well-known/openid-configuration": `{"issuer":"https://evil.example/t/eyJhbGciOiJIUzI1NiJ9.x?token=abc","token_endpoint":"https://evil.example/token"}`},
			false, "openid-configuration: names issuer https://evil.example/t/***, not ", true},
		{"neither", map[string]string{}, false, "oauth-authorization-server/tenant: answered 404; ", true},
		{"no token endpoint", map[string]string{"/tenant/.well-known/openid-configuration": `{"issuer":"ISSUER"}`}, false, "openid-configuration: has no token_endpoint", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var issuer string
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, ok := tt.docs[r.URL.Path]
				if !ok {
					http.NotFound(w, r)
					return
				}
				_, _ = io.WriteString(w, strings.ReplaceAll(body, "ISSUER", issuer))
			}))
			defer ts.Close()
			issuer = ts.URL + "/tenant"
			got, err := Discover(context.Background(), issuer, tt.mtls, Options{})
			if tt.wantErr {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.want)
				assert.Contains(t, err.Error(), "publishes no token endpoint")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// A metadata server's broken answer reaches the error through Go's message, which quotes it: a token in it
// is not shown.
func TestDiscoveryQuotesNothingTokenLikeOfABrokenAnswer(t *testing.T) {
	const token = "eyJhbGciOiJIUzI1NiJ9eyJzdWIiOiIxIn0sig"
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 " + token + " OK\r\n\r\n")
		_ = buf.Flush()
	}))
	defer ts.Close()
	_, err := Discover(context.Background(), ts.URL+"/tenant", false, Options{})
	require.Error(t, err)
	leaks := newLeakIndex(credential{"token", token, true})
	leaks.assertContains(t, err.Error(), "malformed HTTP status code")
}

// blockingServer answers tokens tok-N; while gate is set, it waits for it before answering.
type blockingServer struct {
	*tokenServer
	gate atomic.Pointer[chan struct{}]
	fail atomic.Bool
}

func newBlockingServer(t *testing.T, lifetime int) *blockingServer {
	bs := &blockingServer{}
	bs.tokenServer = newTokenServer(t, func(n int64, w http.ResponseWriter) {
		if g := bs.gate.Load(); g != nil {
			<-*g
		}
		if bs.fail.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":%d}`, n, lifetime)
	})
	return bs
}

func TestRefreshAheadNeverMakesARequestWait(t *testing.T) {
	bs := newBlockingServer(t, 100)
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	f, err := NewFetcher(Config{TokenURL: bs.URL, ClientID: "c", ClientSecret: "s"}, Options{Clock: clock})
	require.NoError(t, err)
	c := NewCache(CacheOptions{Clock: clock})
	first, _, err := c.Token(context.Background(), f)
	require.NoError(t, err)

	clock.Advance(79 * time.Second)
	_, hit, err := c.Token(context.Background(), f)
	require.NoError(t, err)
	assert.Equal(t, ViaHit, hit)
	assert.EqualValues(t, 1, bs.Count.Load(), "no refresh before 80 % of the lifetime")

	// The token endpoint now hangs until released; requests still get the current token at once.
	gate := make(chan struct{})
	bs.gate.Store(&gate)
	clock.Advance(2 * time.Second)
	for i := 0; i < 50; i++ {
		tok, hit, err := c.Token(context.Background(), f)
		require.NoError(t, err)
		assert.Equal(t, ViaHit, hit)
		assert.Equal(t, first.Value, tok.Value)
	}
	require.Eventually(t, func() bool { return bs.Count.Load() == 2 }, 5*time.Second, time.Millisecond,
		"one background refresh reached the endpoint")
	close(gate)
	require.Eventually(t, func() bool {
		tok, _, err := c.Token(context.Background(), f)
		return err == nil && tok.Value == "tok-2"
	}, 5*time.Second, time.Millisecond)
	assert.EqualValues(t, 2, bs.Count.Load(), "50 requests during the refresh started one fetch")
}

func TestFailedRefreshKeepsTheValidToken(t *testing.T) {
	bs := newBlockingServer(t, 100)
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	f, err := NewFetcher(Config{TokenURL: bs.URL, ClientID: "c", ClientSecret: "s"}, Options{Clock: clock})
	require.NoError(t, err)
	c := NewCache(CacheOptions{Clock: clock})
	_, _, err = c.Token(context.Background(), f)
	require.NoError(t, err)

	bs.fail.Store(true)
	clock.Advance(81 * time.Second)
	tok, _, err := c.Token(context.Background(), f)
	require.NoError(t, err)
	assert.Equal(t, "tok-1", tok.Value)
	require.Eventually(t, func() bool { return bs.Count.Load() == 2 && !c.entry(f.key).refreshing.Load() }, 5*time.Second, time.Millisecond)
	// Within the backoff, requests do not start another refresh, and the valid token keeps being used.
	for i := 0; i < 20; i++ {
		tok, _, err = c.Token(context.Background(), f)
		require.NoError(t, err)
		assert.Equal(t, "tok-1", tok.Value)
	}
	assert.EqualValues(t, 2, bs.Count.Load())

	// Past the backoff, the next request tries again and the endpoint is back.
	bs.fail.Store(false)
	clock.Advance(BackoffMin)
	_, _, err = c.Token(context.Background(), f)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		tok, _, err := c.Token(context.Background(), f)
		return err == nil && tok.Value == "tok-3"
	}, 5*time.Second, time.Millisecond)
}

func TestBackoffBoundsAttemptsOnADeadEndpoint(t *testing.T) {
	bs := newBlockingServer(t, 100)
	bs.fail.Store(true)
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	f, err := NewFetcher(Config{TokenURL: bs.URL, ClientID: "c", ClientSecret: "s"}, Options{Clock: clock})
	require.NoError(t, err)
	c := NewCache(CacheOptions{Clock: clock})

	// Ten simulated minutes with a request every 100 ms: 6,000 requests.
	var fastFails int
	for elapsed := time.Duration(0); elapsed < 10*time.Minute; elapsed += 100 * time.Millisecond {
		_, _, err := c.Token(context.Background(), f)
		require.Error(t, err)
		e, ok := AsError(err)
		require.True(t, ok, "the last error reaches the caller: %v", err)
		assert.Equal(t, http.StatusServiceUnavailable, e.StatusCode)
		if IsBackoff(err) {
			fastFails++
		}
		clock.Advance(100 * time.Millisecond)
	}
	attempts := bs.Count.Load()
	t.Logf("a dead endpoint saw %d attempts in 10 simulated minutes of 6,000 requests", attempts)
	// 1 s doubling to 1 min with jitter between half and all of each step: at least 7 + 10 and at most 7 + 20.
	assert.GreaterOrEqual(t, attempts, int64(15))
	assert.LessOrEqual(t, attempts, int64(30))
	assert.Equal(t, 6000-int(attempts), fastFails)
}

func TestBackoffHonoursRetryAfter(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			ts := newTokenServer(t, func(_ int64, w http.ResponseWriter) {
				w.Header().Set("Retry-After", "120")
				w.WriteHeader(status)
			})
			clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
			f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s"}, Options{Clock: clock})
			require.NoError(t, err)
			c := NewCache(CacheOptions{Clock: clock})
			_, _, err = c.Token(context.Background(), f)
			require.Error(t, err)
			clock.Advance(119 * time.Second)
			_, _, err = c.Token(context.Background(), f)
			assert.True(t, IsBackoff(err))
			assert.EqualValues(t, 1, ts.Count.Load(), "nothing asked before Retry-After passed")
			clock.Advance(time.Second)
			_, _, err = c.Token(context.Background(), f)
			assert.False(t, IsBackoff(err))
			assert.EqualValues(t, 2, ts.Count.Load())
		})
	}
}

func TestFreshFetchesEveryTimeButBacksOff(t *testing.T) {
	bs := newBlockingServer(t, 3600)
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	f, err := NewFetcher(Config{TokenURL: bs.URL, ClientID: "c", ClientSecret: "s"}, Options{Clock: clock})
	require.NoError(t, err)
	c := NewCache(CacheOptions{Clock: clock})
	a, err := c.Fresh(context.Background(), f)
	require.NoError(t, err)
	b, err := c.Fresh(context.Background(), f)
	require.NoError(t, err)
	assert.NotEqual(t, a.Value, b.Value)
	bs.fail.Store(true)
	_, err = c.Fresh(context.Background(), f)
	require.Error(t, err)
	_, err = c.Fresh(context.Background(), f)
	assert.True(t, IsBackoff(err))
	assert.EqualValues(t, 3, bs.Count.Load())
}
