package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// revoker is an upstream that accepts every token until revoked, then answers 401 to the first token the
// token server issued, as a supplier does that revoked a token in use.
type revoker struct{ revoked atomic.Bool }

func (rv *revoker) handle(w http.ResponseWriter, r *http.Request) {
	if rv.revoked.Load() && r.Header.Get("Authorization") == "Bearer "+testTokenPrefix+"1" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "token revoked", http.StatusUnauthorized)
		return
	}
	_, _ = io.WriteString(w, "accepted "+r.Header.Get("Authorization")[len("Bearer "):])
}

// warm caches the route's first token with one accepted request, lets it age past RejectMinAge, then
// has the supplier revoke it.
func (h *harness) warm(rv *revoker, rawURL string) {
	h.t.Helper()
	resp, _ := h.get(h.caPool, rawURL, nil)
	require.Equal(h.t, http.StatusOK, resp.StatusCode)
	h.clock.Advance(time.Minute)
	rv.revoked.Store(true)
}

func post(t *testing.T, h *harness, rawURL string, body io.Reader, contentLength int64) (*http.Response, string) {
	req, err := http.NewRequest(http.MethodPost, rawURL, body)
	require.NoError(t, err)
	req.ContentLength = contentLength
	resp, err := h.client(h.caPool).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestReplayAfter401WithFreshToken(t *testing.T) {
	payload := strings.Repeat("order-line;", 5000) // 55 kB
	for _, sc := range schemes {
		for _, known := range []bool{true, false} {
			name := sc.name + " chunked"
			if known {
				name = sc.name + " with length"
			}
			t.Run(name, func(t *testing.T) {
				h := newHarness(t, harnessOptions{})
				rv := &revoker{}
				up := h.upstreamFor(sc.tls, false, rv.handle)
				h.route(sc.hostport, up)
				h.warm(rv, sc.scheme+"://supplier.test/warm")
				length := int64(len(payload))
				var body io.Reader = strings.NewReader(payload)
				if !known {
					length, body = -1, io.MultiReader(strings.NewReader(payload)) // hides the length
				}
				resp, got := post(t, h, sc.scheme+"://supplier.test/orders", body, length)
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Equal(t, "accepted "+testTokenPrefix+"2", got)
				reqs := up.requests()[1:] // after the warm-up
				require.Len(t, reqs, 2, "one replay")
				assert.Equal(t, sha([]byte(payload)), reqs[0].BodySHA)
				assert.Equal(t, reqs[0].BodySHA, reqs[1].BodySHA, "the replay is byte-identical")
				assert.Equal(t, "Bearer "+testTokenPrefix+"2", reqs[1].Header.Get("Authorization"))
				assert.EqualValues(t, 2, h.tokens.Count.Load())
				assert.Contains(t, h.logs.String(), "replayed=true")
				assert.Equal(t, 1.0, h.metrics.get("replays orders"))
			})
		}
	}
}

func TestNoReplayForLargeBodiesOrWhenDisabled(t *testing.T) {
	tests := []struct {
		name   string
		extra  string
		body   string
		length int64
	}{
		{"body over retryBodyLimit", "    retryBodyLimit: 16\n", strings.Repeat("x", 17), 17},
		{"chunked body over retryBodyLimit", "    retryBodyLimit: 16\n", strings.Repeat("x", 17), -1},
		{"retryOn401 false", "    retryOn401: false\n", "small", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{yaml: strings.Replace(defaultRoutes, "    clientSecret: "+testClientSecret+"\n",
				"    clientSecret: "+testClientSecret+"\n"+tt.extra, 1)})
			rv := &revoker{}
			up := newUpstream(t, nil, false, rv.handle)
			h.route("supplier.test:80", up)
			h.warm(rv, "http://supplier.test/warm")
			var body io.Reader = bytes.NewBufferString(tt.body)
			if tt.length < 0 {
				body = io.MultiReader(body)
			}
			resp, got := post(t, h, "http://supplier.test/orders", body, tt.length)
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the supplier's 401 reaches the app unchanged")
			assert.Equal(t, "token revoked\n", got)
			assert.Equal(t, `Bearer error="invalid_token"`, resp.Header.Get("WWW-Authenticate"))
			assert.Len(t, up.requests(), 2, "the warm-up and the one send")
			assert.Equal(t, sha([]byte(tt.body)), up.last(t).BodySHA)
			assert.EqualValues(t, 1, h.tokens.Count.Load())
		})
	}
}

func TestAtMostOneReplay(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	var refuseAll atomic.Bool
	up := newUpstream(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
		if refuseAll.Load() {
			http.Error(w, "never", http.StatusUnauthorized)
		}
	})
	h.route("supplier.test:80", up)
	h.get(nil, "http://supplier.test/warm", nil)
	h.clock.Advance(time.Minute)
	refuseAll.Store(true)
	resp, _ := post(t, h, "http://supplier.test/", strings.NewReader("x"), 1)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Len(t, up.requests(), 3, "the warm-up, the first send and one replay, never more")
	assert.EqualValues(t, 2, h.tokens.Count.Load())
}

// A supplier revoking a token seconds after it was issued (an IdP restart, a key rotation) costs the app
// nothing: the request is replayed with a fresh token.
func TestARevocationRightAfterIssueCostsTheAppNothing(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	rv := &revoker{}
	rv.revoked.Store(true) // the first token is refused from the start
	up := newUpstream(t, nil, false, rv.handle)
	h.route("supplier.test:80", up)
	resp, body := h.get(nil, "http://supplier.test/", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "accepted "+testTokenPrefix+"2", body)
	assert.EqualValues(t, 2, h.tokens.Count.Load())
	assert.Equal(t, 1.0, h.metrics.get("replays orders"))
}

// A supplier that refuses every token (a wrong audience or scope) costs the token endpoint a handful of
// fetches a minute: once a token fetched after a refusal is refused too, refusals stop fetching for a
// backoff of 1 s doubling to 1 min.
func TestASupplierThatRefusesEveryTokenCostsAtMostTenFetchesAMinute(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	up := newUpstream(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "wrong audience", http.StatusUnauthorized)
	})
	h.route("supplier.test:80", up)
	client := h.client(nil)
	for i := 0; i < 1200; i++ { // two minutes of a request every 100 ms
		resp, err := client.Get("http://supplier.test/")
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the app gets the supplier's answer")
		h.clock.Advance(100 * time.Millisecond)
		if i == 599 {
			assert.LessOrEqual(t, h.tokens.Count.Load(), int64(10), "the first minute")
		}
	}
	assert.LessOrEqual(t, h.tokens.Count.Load(), int64(12), "two minutes")
	assert.GreaterOrEqual(t, h.tokens.Count.Load(), int64(7), "it keeps trying, more and more rarely")
	assert.Equal(t, 1, strings.Count(h.logs.String(), "refuses the tokens tokenproxy fetches"), "logged once")
	assert.Positive(t, h.metrics.get("refusal backoffs orders"))
	st := h.srv.Status()[0]
	assert.NotNil(t, st.Token.RefusalsBackedOffUntil)
}

func TestConcurrent401sShareOneFreshToken(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	rv := &revoker{}
	up := newUpstream(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
		if rv.revoked.Load() && r.Header.Get("Authorization") == "Bearer "+testTokenPrefix+"1" {
			arrived <- struct{}{}
			<-release // hold every first attempt until all of them hold the same token
		}
		rv.handle(w, r)
	})
	h.route("supplier.test:80", up)
	h.warm(rv, "http://supplier.test/warm")
	const n = 10
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.client(nil).Get("http://supplier.test/")
			if assert.NoError(t, err) {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			}
		}()
	}
	for i := 0; i < n; i++ {
		<-arrived
	}
	close(release)
	wg.Wait()
	for _, s := range statuses {
		assert.Equal(t, http.StatusOK, s)
	}
	assert.EqualValues(t, 2, h.tokens.Count.Load(), "the first token, then one fresh token for all ten 401s")
	assert.Len(t, up.requests(), 1+2*n)
}

func TestHeaderPrefixAndExtraHeaders(t *testing.T) {
	t.Setenv("TOKENPROXY_TEST_API_KEY", "from-env")
	h := newHarness(t, harnessOptions{yaml: defaultRoutes + `    header: X-Api-Token
    prefix: ""
    headers:
      X-Api-Key: ${TOKENPROXY_TEST_API_KEY}
      X-Partner: procu
`})
	up := newUpstream(t, nil, false, nil)
	h.route("fresh.test:80", up)
	resp, _ := h.get(nil, "http://fresh.test/", http.Header{"X-Api-Token": {"app-value"}, "Authorization": {"Basic YXBwOmFwcA=="}})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	got := up.last(t)
	assert.Equal(t, testTokenPrefix+"1", got.Header.Get("X-Api-Token"), "the token with an empty prefix, the app's value gone")
	assert.Equal(t, []string{testTokenPrefix + "1"}, got.Header.Values("X-Api-Token"))
	assert.Equal(t, "from-env", got.Header.Get("X-Api-Key"))
	assert.Equal(t, "procu", got.Header.Get("X-Partner"))
	assert.Equal(t, "Basic YXBwOmFwcA==", got.Header.Get("Authorization"), "only the configured header is replaced")
}

func TestRoutesWithTheSameCredentialsShareAToken(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	plain := newUpstream(t, nil, false, nil)
	h.route("supplier.test:80", plain)
	tlsUp := newUpstream(t, h.upCert, false, nil)
	h.route("secure.test:443", tlsUp)
	h.get(nil, "http://supplier.test/", nil)
	h.get(nil, "http://secure.test/", nil) // route "secure": same tokenUrl, clientId, grant, scope, style
	assert.EqualValues(t, 1, h.tokens.Count.Load())
	assert.Equal(t, plain.last(t).Header.Get("Authorization"), tlsUp.last(t).Header.Get("Authorization"))
}
