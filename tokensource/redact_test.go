package tokensource

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A token endpoint may echo what it was sent; none of the route's credentials, in any encoding, reaches an
// error (and so a 502 body, a log line or check's output).
func TestCredentialsEchoedByTheEndpointAreRedacted(t *testing.T) {
	const secret = "s3cr/et+with&odd=chars"
	const apiKey = "gw-key-8c1f0e"
	const routeKey = "supplier-api-key-77aa"
	jsonString := func(s string) string { b, _ := json.Marshal(s); return strings.Trim(string(b), `"`) }
	echoes := map[string]string{
		"raw":           secret,
		"query-escaped": url.QueryEscape(secret),
		"path-escaped":  url.PathEscape(secret),
		"json-escaped":  jsonString(`<` + secret + `>`),
		"basic":         base64.StdEncoding.EncodeToString([]byte("client:" + url.QueryEscape(secret))),
		"api key":       apiKey,
		"route key":     routeKey,
	}
	for name, echo := range echoes {
		t.Run(name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_ = json.NewEncoder(w).Encode(map[string]string{
					"error":             "invalid_client",
					"error_description": "client secret " + echo + " is wrong",
					"error_uri":         "https://docs.example/errors?given=" + echo,
				})
			}))
			defer ts.Close()
			f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "client", ClientSecret: secret,
				TokenHeaders: map[string]string{"X-Gateway-Key": apiKey}, Sensitive: []string{routeKey}}, Options{})
			require.NoError(t, err)
			_, err = f.Fetch(context.Background())
			e, ok := AsError(err)
			require.True(t, ok)
			assert.Regexp(t, `^client secret (\\u003c)?\[redacted\](\\u003e)? is wrong$`, e.Description)
			assert.Regexp(t, `^https://docs.example/errors\?given=(\\u003c)?\[redacted\](\\u003e)?$`, e.URI)
			for _, leak := range []string{secret, url.QueryEscape(secret), apiKey, routeKey, echo} {
				assert.NotContains(t, err.Error(), leak)
				assert.NotContains(t, e.Hint(), leak)
			}
		})
	}
}

// A 200 answer that is not JSON shows its start in the error; a form-encoded token in it is redacted even
// when its encoding cuts it into short runs.
func TestATokenInAFormEncodedAnswerIsRedacted(t *testing.T) {
	token := "eyJhbGciOi+JIUzI1NiJ9/abc+def+ghi+jkl=="
	ts := newTokenServer(t, func(_ int64, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		_, _ = fmt.Fprintf(w, "access_token=%s&token_type=bearer&expires_in=3600", url.QueryEscape(token))
	})
	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "secret-value"}, Options{})
	require.NoError(t, err)
	_, err = f.Fetch(context.Background())
	e, ok := AsError(err)
	require.True(t, ok)
	assert.Equal(t, KindNotJSON, e.Kind)
	assert.Contains(t, e.Snippet, "access_token=[redacted]")
	assert.Contains(t, e.Snippet, "token_type=bearer", "harmless fields stay readable")
	for _, piece := range []string{"eyJhbGci", "JIUzI1NiJ9", "abc", "%2Bdef", "jkl"} {
		assert.NotContains(t, err.Error(), piece)
	}
}

func TestRedactorLeavesShortAndOrdinaryTextAlone(t *testing.T) {
	r := newRedactor([]string{"abc", "", "long-secret-1"})
	assert.Equal(t, "abc and [redacted]", r.redact("abc and long-secret-1"), "values under 4 characters are not hunted for")
	_, _ = io.Discard.Write(nil)
}
