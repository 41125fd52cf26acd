package tokensource

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

const testSecret = "s3cr3t:with/odd+chars"

// tokenServer is the shared recording token endpoint; newTokenServer answers the n-th request with answer.
type tokenServer = testkit.TokenServer

func newTokenServer(t *testing.T, answer func(n int64, w http.ResponseWriter)) *tokenServer {
	return testkit.NewTokenServer(t, func(n int64, _ testkit.TokenRequest, w http.ResponseWriter) {
		if answer != nil {
			answer(n, w)
		}
	})
}

func jsonAnswer(obj any) func(int64, http.ResponseWriter) {
	return func(_ int64, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(obj)
	}
}

func TestRequestStyles(t *testing.T) {
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("client%3A1:"+url.QueryEscape(testSecret)))
	tests := []struct {
		name       string
		auth       AuthStyle
		style      RequestStyle
		wantAuth   string
		wantType   string
		wantFields map[string]string
	}{
		{"basic+form", AuthBasicHeader, RequestForm, basic, "application/x-www-form-urlencoded",
			map[string]string{"grant_type": "client_credentials", "scope": "orders.read orders.write"}},
		{"body+form", AuthBody, RequestForm, "", "application/x-www-form-urlencoded",
			map[string]string{"grant_type": "client_credentials", "scope": "orders.read orders.write",
				"client_id": "client:1", "client_secret": testSecret}},
		{"basic+json", AuthBasicHeader, RequestJSON, basic, "application/json",
			map[string]string{"grant_type": "client_credentials", "scope": "orders.read orders.write"}},
		{"body+json", AuthBody, RequestJSON, "", "application/json",
			map[string]string{"grant_type": "client_credentials", "scope": "orders.read orders.write",
				"client_id": "client:1", "client_secret": testSecret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTokenServer(t, jsonAnswer(map[string]any{"access_token": "tok-1", "expires_in": 60}))
			f, err := NewFetcher(Config{TokenURL: ts.URL + "/oauth/token", ClientID: "client:1", ClientSecret: testSecret,
				Scope: "orders.read orders.write", AuthStyle: tt.auth, RequestStyle: tt.style}, Options{})
			require.NoError(t, err)
			tok, err := f.Fetch(context.Background())
			require.NoError(t, err)
			assert.Equal(t, "tok-1", tok.Value)
			assert.Equal(t, time.Minute, tok.Lifetime())

			got := ts.Last(t)
			assert.Equal(t, tt.wantAuth, got.Header.Get("Authorization"))
			assert.Equal(t, tt.wantType, got.Header.Get("Content-Type"))
			assert.Equal(t, "application/json", got.Header.Get("Accept"))
			fields := map[string]string{}
			for k := range got.Form {
				fields[k] = got.Form.Get(k)
			}
			assert.Equal(t, tt.wantFields, fields)
		})
	}
}

func TestScopeOmittedWhenEmpty(t *testing.T) {
	ts := newTokenServer(t, jsonAnswer(map[string]any{"access_token": "t"}))
	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s"}, Options{})
	require.NoError(t, err)
	_, err = f.Fetch(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "grant_type=client_credentials", ts.Last(t).Body)
}

// A Config built in code is held to what the loader refuses: params never replace a field tokenproxy sends.
func TestParamsNeverReplaceAFieldTokenproxySends(t *testing.T) {
	for _, name := range []string{"grant_type", "client_secret", "Scope", "subject_token"} {
		_, err := NewFetcher(Config{TokenURL: "https://auth.example/token", ClientID: "c", ClientSecret: "s",
			Params: map[string]string{"audience": "a", name: "other-value"}}, Options{})
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "tokensource: params may not set "+name+": ")
		assert.NotContains(t, err.Error(), "other-value")
	}
	_, err := NewFetcher(Config{TokenURL: "https://auth.example/token", ClientID: "c", ClientSecret: "s",
		Params: map[string]string{"audience": "a", "resource": "r"}}, Options{})
	assert.NoError(t, err)
}

func TestTokenPathAndLifetime(t *testing.T) {
	tests := []struct {
		name         string
		path         string
		answer       string
		wantToken    string
		wantLifetime time.Duration
		wantKeys     []string // set when no token is expected
	}{
		{"top level", "", `{"access_token":"a","expires_in":3600}`, "a", time.Hour, nil},
		{"numeric string lifetime", "", `{"access_token":"a","expires_in":"120"}`, "a", 2 * time.Minute, nil},
		{"no lifetime", "", `{"access_token":"a"}`, "a", DefaultLifetime, nil},
		{"zero lifetime is clamped", "", `{"access_token":"a","expires_in":0}`, "a", MinLifetime, nil},
		{"nested", "data.token", `{"data":{"token":"n","expires_in":90}}`, "n", 90 * time.Second, nil},
		{"nested, lifetime at top", "data.token", `{"data":{"token":"n"},"expires_in":30}`, "n", 30 * time.Second, nil},
		{"missing", "", `{"token":"x","token_type":"bearer"}`, "", 0, []string{"token", "token_type"}},
		{"nested missing", "data.token", `{"data":{"jwt":"x"}}`, "", 0, []string{"jwt"}},
		{"not an object on the way", "data.token", `{"data":"x"}`, "", 0, []string{"data"}},
		{"not a string", "", `{"access_token":{"v":1}}`, "", 0, []string{"access_token"}},
		{"empty string", "", `{"access_token":""}`, "", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTokenServer(t, func(_ int64, w http.ResponseWriter) { _, _ = io.WriteString(w, tt.answer) })
			f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s", TokenPath: tt.path}, Options{})
			require.NoError(t, err)
			tok, err := f.Fetch(context.Background())
			if tt.wantToken == "" {
				e, ok := AsError(err)
				require.True(t, ok, "want *Error, got %v", err)
				assert.Equal(t, KindNoToken, e.Kind)
				if tt.wantKeys != nil {
					assert.Equal(t, tt.wantKeys, e.Keys)
				}
				assert.NotContains(t, err.Error(), `"x"`, "values must never appear")
				assert.Contains(t, e.Hint(), "tokenPath")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantToken, tok.Value)
			assert.Equal(t, tt.wantLifetime, tok.Lifetime())
			assert.Equal(t, Fingerprint(tt.wantToken), tok.Fingerprint())
			assert.Equal(t, []string{"Bearer " + tt.wantToken}, tok.HeaderValue("Bearer "))
		})
	}
}

// What each request sends and logs is worked out once per token, not per request.
func TestTokenHeaderAndFingerprintAllocs(t *testing.T) {
	ts := newTokenServer(t, func(_ int64, w http.ResponseWriter) {
		_, _ = io.WriteString(w, `{"data":{"token":"n","expires_in":90}}`)
	})
	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s", TokenPath: "data.token"}, Options{})
	require.NoError(t, err)
	tok, err := f.Fetch(context.Background())
	require.NoError(t, err)
	assert.Zero(t, testkit.AllocsPerRun(t, 50, func() { _, _ = tok.Fingerprint(), tok.HeaderValue("Bearer ") }))
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		kind     Kind
		code     string
		hint     string
		mustHide string
	}{
		{"invalid_client", 401, `{"error":"invalid_client","error_description":"bad secret"}`, KindStatus, "invalid_client", "authStyle", ""},
		{"server error without json", 503, `<html>down</html>`, KindStatus, "", "failing", ""},
		{"not json", 200, `access_token=abcdefghijklmnopqrstuvwxyz0123456789&token_type=bearer`, KindNotJSON, "", "tokenUrl", "abcdefghijklmnopqrstuvwxyz"},
		{"too large", 200, `{"access_token":"` + strings.Repeat("a", MaxResponseBytes) + `"}`, KindTooLarge, "", "", ""},
		{"wrong path", 404, `404 page not found`, KindStatus, "", "check tokenUrl: the endpoint answered 404, so the path is probably not the token endpoint's", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTokenServer(t, func(_ int64, w http.ResponseWriter) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			f, err := NewFetcher(Config{TokenURL: ts.URL + "/token?tenant=x", ClientID: "c", ClientSecret: testSecret}, Options{})
			require.NoError(t, err)
			_, err = f.Fetch(context.Background())
			e, ok := AsError(err)
			require.True(t, ok, "want *Error, got %v", err)
			assert.Equal(t, tt.kind, e.Kind)
			assert.Equal(t, tt.status, e.StatusCode)
			assert.Equal(t, tt.code, e.Code)
			assert.Contains(t, e.Hint(), tt.hint)
			assert.Equal(t, ts.URL+"/token", e.TokenURL, "the query is not shown")
			assert.NotContains(t, err.Error(), testSecret)
			if tt.mustHide != "" {
				assert.NotContains(t, err.Error(), tt.mustHide)
			}
		})
	}
}

func TestNetworkErrorAndRedirects(t *testing.T) {
	ts := newTokenServer(t, jsonAnswer(map[string]any{"access_token": "x"}))
	url := ts.URL
	ts.Close()
	f, err := NewFetcher(Config{TokenURL: url, ClientID: "c", ClientSecret: "s"}, Options{})
	require.NoError(t, err)
	_, err = f.Fetch(context.Background())
	e, ok := AsError(err)
	require.True(t, ok)
	assert.Equal(t, KindNetwork, e.Kind)
	assert.Contains(t, e.Hint(), "reachable")

	other := newTokenServer(t, jsonAnswer(map[string]any{"access_token": "stolen"}))
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	f, err = NewFetcher(Config{TokenURL: redirector.URL, ClientID: "c", ClientSecret: "s"}, Options{})
	require.NoError(t, err)
	_, err = f.Fetch(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redirect")
	assert.Zero(t, other.Count.Load(), "the credentials must not follow a redirect to another host")
}

// The skew is checked on each side of its edge with a cache of its own, so the refresh-ahead that the
// first call past 80 % of the lifetime starts cannot replace the token being looked at.
func TestCacheExpirySkew(t *testing.T) {
	tests := []struct {
		lifetime   int
		reuseUntil time.Duration // last moment the first token is still handed out
	}{
		{3600, 3600*time.Second - 30*time.Second}, // skew capped at 30 s
		{100, 90 * time.Second},                   // 10 % of the lifetime
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.lifetime), func(t *testing.T) {
			// Each side has a token server and a cache of its own, started with the first token fetched.
			cacheAt := func(elapsed time.Duration) (*Cache, *Fetcher) {
				ts := newTokenServer(t, func(n int64, w http.ResponseWriter) {
					_, _ = fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":%d}`, n, tt.lifetime)
				})
				clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
				f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s"}, Options{Clock: clock})
				require.NoError(t, err)
				c := NewCache(CacheOptions{Clock: clock})
				t.Cleanup(c.refreshes.Wait)
				tok, hit, err := c.Token(context.Background(), f)
				require.NoError(t, err)
				require.Equal(t, ViaFetch, hit)
				require.Equal(t, "tok-1", tok.Value)
				clock.Advance(elapsed)
				return c, f
			}

			// A second before the edge, the first token is still handed out.
			c, f := cacheAt(tt.reuseUntil - time.Second)
			tok, hit, err := c.Token(context.Background(), f)
			require.NoError(t, err)
			assert.Equal(t, ViaHit, hit)
			assert.Equal(t, "tok-1", tok.Value)

			// At the edge, it no longer is: the call fetches.
			c, f = cacheAt(tt.reuseUntil)
			tok, hit, err = c.Token(context.Background(), f)
			require.NoError(t, err)
			assert.Equal(t, ViaFetch, hit)
			assert.Equal(t, "tok-2", tok.Value)
		})
	}
}

func TestCacheSingleflight(t *testing.T) {
	release := make(chan struct{})
	ts := newTokenServer(t, func(_ int64, w http.ResponseWriter) {
		<-release
		_, _ = io.WriteString(w, `{"access_token":"shared","expires_in":3600}`)
	})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // runs before the server's Close, so a failure never hangs
	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s"}, Options{})
	require.NoError(t, err)
	c := NewCache(CacheOptions{})

	const callers = 1000
	var started, done sync.WaitGroup
	started.Add(callers)
	done.Add(callers)
	values := make([]string, callers)
	errs := make([]error, callers)
	for i := 0; i < callers; i++ {
		go func() {
			defer done.Done()
			started.Done()
			tok, _, err := c.Token(context.Background(), f)
			errs[i] = err
			if tok != nil {
				values[i] = tok.Value
			}
		}()
	}
	started.Wait()
	// Every caller is running; wait until the one fetch has reached the server before releasing it.
	require.Eventually(t, func() bool { return ts.Count.Load() == 1 }, 5*time.Second, time.Millisecond)
	once.Do(func() { close(release) })
	done.Wait()
	for i := range values {
		require.NoError(t, errs[i])
		require.Equal(t, "shared", values[i])
	}
	assert.EqualValues(t, 1, ts.Count.Load(), "1,000 concurrent callers make exactly one token request")
}

func TestCacheSharedByEqualCredentials(t *testing.T) {
	ts := newTokenServer(t, func(n int64, w http.ResponseWriter) {
		_, _ = fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":3600}`, n)
	})
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	c := NewCache(CacheOptions{Clock: clock})
	mk := func(scope string) *Fetcher {
		f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s", Scope: scope}, Options{Clock: clock})
		require.NoError(t, err)
		return f
	}
	a, b, other := mk("read"), mk("read"), mk("write")
	ta, _, err := c.Token(context.Background(), a)
	require.NoError(t, err)
	tb, hit, err := c.Token(context.Background(), b)
	require.NoError(t, err)
	assert.Equal(t, ViaHit, hit)
	assert.Equal(t, ta.Value, tb.Value)
	to, _, err := c.Token(context.Background(), other)
	require.NoError(t, err)
	assert.NotEqual(t, ta.Value, to.Value, "a different scope never shares a token")

	assert.True(t, c.Reject(a, ta), "a refused token is dropped, however young")
	ta2, hit, err := c.Token(context.Background(), a)
	require.NoError(t, err)
	assert.Equal(t, ViaFetch, hit)
	assert.NotEqual(t, ta.Value, ta2.Value)
	assert.True(t, c.Reject(b, ta), "already replaced: retry with the new token")
	tb2, hit, err := c.Token(context.Background(), b)
	require.NoError(t, err)
	assert.Equal(t, ViaHit, hit)
	assert.Equal(t, ta2.Value, tb2.Value)
}

func TestCacheKeySeparatesSecretsAndParsing(t *testing.T) {
	ts := newTokenServer(t, func(n int64, w http.ResponseWriter) {
		_, _ = fmt.Fprintf(w, `{"access_token":"tok-%d","data":{"token":"nested-%d"},"expires_in":3600}`, n, n)
	})
	c := NewCache(CacheOptions{})
	get := func(cfg Config) string {
		cfg.TokenURL, cfg.ClientID = ts.URL, "c"
		f, err := NewFetcher(cfg, Options{})
		require.NoError(t, err)
		tok, _, err := c.Token(context.Background(), f)
		require.NoError(t, err)
		return tok.Value
	}
	assert.Equal(t, "tok-1", get(Config{ClientSecret: "right"}))
	assert.Equal(t, "tok-2", get(Config{ClientSecret: "wrong"}), "a different secret never rides on another token")
	assert.Equal(t, "nested-3", get(Config{ClientSecret: "right", TokenPath: "data.token"}))
	assert.Equal(t, "tok-1", get(Config{ClientSecret: "right"}))
}

func TestSharedFetchSurvivesTheFirstCallerGivingUp(t *testing.T) {
	release := make(chan struct{})
	ts := newTokenServer(t, func(_ int64, w http.ResponseWriter) {
		<-release
		_, _ = io.WriteString(w, `{"access_token":"shared","expires_in":3600}`)
	})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s"}, Options{})
	require.NoError(t, err)
	c := NewCache(CacheOptions{})

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, _, err := c.Token(ctx, f)
		first <- err
	}()
	require.Eventually(t, func() bool { return ts.Count.Load() == 1 }, 5*time.Second, time.Millisecond)
	second := make(chan *Token, 1)
	go func() {
		tok, _, _ := c.Token(context.Background(), f)
		second <- tok
	}()
	cancel()
	assert.ErrorIs(t, <-first, context.Canceled, "the first caller gives up")
	once.Do(func() { close(release) })
	tok := <-second
	require.NotNil(t, tok, "the shared fetch went on for the second caller")
	assert.Equal(t, "shared", tok.Value)
	assert.EqualValues(t, 1, ts.Count.Load())
}

func TestCacheKeyCoversParamsAndAuthStyle(t *testing.T) {
	ts := newTokenServer(t, func(n int64, w http.ResponseWriter) {
		_, _ = fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":3600}`, n)
	})
	c := NewCache(CacheOptions{})
	mk := func(style AuthStyle, params map[string]string) *Fetcher {
		f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s", AuthStyle: style, Params: params}, Options{})
		require.NoError(t, err)
		return f
	}
	value := func(f *Fetcher) string {
		tok, _, err := c.Token(context.Background(), f)
		require.NoError(t, err)
		return tok.Value
	}
	base := value(mk(AuthBasicHeader, map[string]string{"audience": "a", "resource": "r"}))
	assert.Equal(t, base, value(mk(AuthBasicHeader, map[string]string{"resource": "r", "audience": "a"})))
	assert.NotEqual(t, base, value(mk(AuthBasicHeader, map[string]string{"audience": "b", "resource": "r"})))
	assert.NotEqual(t, base, value(mk(AuthBody, map[string]string{"audience": "a", "resource": "r"})))
	assert.EqualValues(t, 3, ts.Count.Load())
}

func TestFingerprintIsAShortSHA256(t *testing.T) {
	tok := &Token{Value: "very-secret-token"}
	assert.Equal(t, "01cadf39", tok.Fingerprint(), "the first 4 bytes of SHA-256, in hex: it names the token, never reveals it")
	assert.NotEqual(t, tok.Fingerprint(), Fingerprint("very-secret-tokem"), "one character changes the fingerprint")
}

// Token requests never go through HTTP_PROXY, which in a pod is tokenproxy itself.
func TestTokenRequestsNeverUseProxyEnvironment(t *testing.T) {
	assert.Nil(t, sharedTransport.Proxy)
	assert.Nil(t, buildTransport(x509.NewCertPool(), nil).Proxy)
	f, err := NewFetcher(Config{TokenURL: "https://auth.example/t", ClientID: "c", ClientSecret: "s"}, Options{RootCAs: x509.NewCertPool()})
	require.NoError(t, err)
	assert.Nil(t, f.client.Transport.(*http.Transport).Proxy)
}
