package proxy

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

const (
	echoGatewayKey = "gw-key-8c1f0e9a"  // the route's tokenHeaders value
	echoRouteKey   = "rk-77aa-91c3e05b" // the route's upstream header, marked sensitive
	echoIssued     = testTokenPrefix + "7f3a9c1e5b2d8046"
)

// A token endpoint that echoes what it received, in every form a probe found getting through before, and
// in some more: none of it reaches the app's 502, the log or the status JSON /routes shows, whether the
// secret went as HTTP Basic or in the body; the registered code and a harmless description still do.
func TestEchoedCredentialsNeverReachTheAppOrTheLog(t *testing.T) {
	spaced := func(s string, n int) string { // too short for the rule on runs of token characters
		var parts []string
		for len(s) > n {
			parts, s = append(parts, s[:n]), s[n:]
		}
		return strings.Join(append(parts, s), " ")
	}
	each := func(s string, f func(r rune) string) string {
		var b strings.Builder
		for _, r := range s {
			b.WriteString(f(r))
		}
		return b.String()
	}
	failure := func(fields ...string) func(testkit.TokenRequest) (int, string) {
		return func(testkit.TokenRequest) (int, string) {
			obj := map[string]string{}
			for i := 0; i+1 < len(fields); i += 2 {
				obj[fields[i]] = fields[i+1]
			}
			b, _ := json.Marshal(obj)
			return http.StatusUnauthorized, string(b)
		}
	}
	s := testClientSecret
	cases := []struct {
		name   string
		answer func(req testkit.TokenRequest) (status int, body string)
		want   string // in the 502's body
	}{
		{"upper-case", failure("error", "invalid_client", "error_description", "Client authentication failed: secret "+strings.ToUpper(s)+" rejected"),
			"cause: answered 401 invalid_client (Client authentication failed: secret *** rejected)"},
		{"hex", failure("error", "invalid_client", "error_description", "secret "+spaced(hex.EncodeToString([]byte(s)), 10)),
			"invalid_client (secret ***)"},
		{"HTML-escaped", failure("error", "invalid_client", "error_description", "secret "+each(s, func(r rune) string { return fmt.Sprintf("&#%d;", r) })),
			"invalid_client (secret ***)"},
		{"last characters cut", failure("error", "invalid_client", "error_description", "secret "+s[:len(s)-4]+"..."),
			"invalid_client (secret ***...)"},
		{"request body in base64", func(req testkit.TokenRequest) (int, string) {
			return failure("error", "invalid_request", "error_description", "got "+spaced(base64.StdEncoding.EncodeToString([]byte(req.Body)), 12))(req)
		}, "invalid_request (got ***"},
		{"Authorization header", func(req testkit.TokenRequest) (int, string) {
			return failure("error", "invalid_client", "error_description", "got "+spaced(req.Header.Get("Authorization"), 9))(req)
		}, "invalid_client (got"},
		{"the token issued before", failure("error", "invalid_grant", "error_description", "token "+spaced(echoIssued, 9)+" revoked"),
			"invalid_grant (token *** revoked)"},
		{"token-like key names", func(testkit.TokenRequest) (int, string) {
			b, _ := json.Marshal(map[string]any{echoIssued: 1, "secret-" + s: 2, "expires_in": 60, "token_type": "bearer"})
			return http.StatusOK, string(b)
		}, "keys present: expires_in, token_type and 2 more not shown"},
		{"percent-encoded", failure("error", "invalid_client", "error_description", "secret "+each(s, func(r rune) string { return fmt.Sprintf("%%%02X", r) })),
			"invalid_client (secret ***)"},
		{"fullwidth", failure("error", "invalid_client", "error_description", "secret "+each(s, func(r rune) string { return string(r + 0xfee0) })),
			"invalid_client (secret ***)"},
		{"zero-width split", failure("error", "invalid_client", "error_description", "secret "+each(s, func(r rune) string { return string(r) + "\u200d" })),
			"invalid_client (secret ***)"},
		{"keys of the route", failure("error", "invalid_request", "error_description", "keys "+strings.ToUpper(echoGatewayKey)+" and "+echoRouteKey),
			"invalid_request (keys *** and ***)"},
		{"error_uri and code", failure("error", s, "error_description", "Client authentication failed",
			"error_uri", "https://idp.example/errors/"+s+"?token="+echoIssued),
			"cause: answered 401 (unregistered error code) (Client authentication failed) see https://idp.example/errors/***"},
		{"a form-encoded 200", func(testkit.TokenRequest) (int, string) {
			return http.StatusOK, "access_token=" + url.QueryEscape(echoIssued+"+/") + "&token_type=bearer"
		}, "form fields access_token, token_type (values not shown)"},
	}

	var answer atomic.Pointer[func(testkit.TokenRequest) (int, string)]
	var lastRequest atomic.Pointer[testkit.TokenRequest]
	endpoint := testkit.NewTokenServer(t, func(n int64, req testkit.TokenRequest, w http.ResponseWriter) {
		lastRequest.Store(&req)
		status, body := http.StatusOK, fmt.Sprintf(`{"access_token":%q,"expires_in":3600}`, echoIssued)
		if a := answer.Load(); a != nil {
			status, body = (*a)(req)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})
	for _, style := range []string{"basic-header", "body"} {
		t.Run(style, func(t *testing.T) {
			answer.Store(nil)
			h := newHarness(t, harnessOptions{yaml: strings.Replace(defaultRoutes, "{{TOKEN_URL}}/fresh", endpoint.URL, 1) +
				"    authStyle: " + style + "\n    tokenHeaders: {X-Gateway-Key: " + echoGatewayKey + "}\n" +
				"    headers: {X-Api-Key: " + echoRouteKey + "}\n"})
			h.route("fresh.test:80", newUpstream(t, nil, false, nil))
			resp, _ := h.get(nil, "http://fresh.test/", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, "the endpoint issued a token first")

			for _, c := range cases {
				answer.Store(&c.answer)
				h.clock.Advance(tokensource.BackoffMax) // past the last failure's backoff
				resp, body := h.get(nil, "http://fresh.test/", nil)
				require.Equal(t, http.StatusBadGateway, resp.StatusCode, c.name)
				req := *lastRequest.Load()
				if style == "body" {
					require.Equal(t, testClientSecret, req.Form.Get("client_secret"), "the secret went in the body")
				}
				leaks := newEchoLeaks(req)
				status, err := json.Marshal(h.srv.Status())
				require.NoError(t, err)
				leaks.assertNone(t, c.name+": the log", h.logs.String())
				// The texts are printed on failure only once they are known to show no credential.
				if leaks.assertNone(t, c.name+": the 502's body", body) {
					assert.Contains(t, body, c.want, c.name)
				}
				if leaks.assertNone(t, c.name+": the status JSON", string(status)) {
					assert.Contains(t, string(status), `"lastError":"tokensource: token endpoint`, c.name)
				}
			}
			if logs := h.logs.String(); newEchoLeaks(*lastRequest.Load()).assertNone(t, "the log", logs) {
				assert.Contains(t, logs, "Client authentication failed: secret *** rejected", "the log says it too")
			}
		})
	}
}

var notAlnum = regexp.MustCompile(`[^a-z0-9]`)

// echoLeaks indexes every run of 8 characters of every form (as sent, hex, base64 at each alignment) of
// every credential a route's token request carried, to name the form found without printing it.
type echoLeaks struct{ runs, skel map[string]string }

func newEchoLeaks(req testkit.TokenRequest) echoLeaks {
	l := echoLeaks{runs: map[string]string{}, skel: map[string]string{}}
	add := func(name, form string) {
		form = readerFold(form)
		for i := 0; i+8 <= len(form); i++ {
			l.runs[form[i:i+8]] = name
		}
		skel := notAlnum.ReplaceAllString(form, "")
		for i := 0; i+8 <= len(skel); i++ {
			l.skel[skel[i:i+8]] = name + ", letters and digits only"
		}
	}
	for _, c := range []struct {
		name, value string
		raw         bool
	}{
		{"client secret", testClientSecret, true}, {"gateway key", echoGatewayKey, true}, {"route key", echoRouteKey, true},
		{"issued token", echoIssued, true}, {"Authorization header", req.Header.Get("Authorization"), true},
		{"Basic credentials", "buyer:" + testClientSecret, false}, {"request body", req.Body, false},
	} {
		if c.value == "" {
			continue
		}
		if c.raw {
			add(c.name, c.value)
		}
		add(c.name+" as hex", hex.EncodeToString([]byte(c.value)))
		for k := 0; k < 3; k++ {
			add(fmt.Sprintf("%s as base64 from byte %d", c.name, k), base64.StdEncoding.EncodeToString([]byte(c.value[k:])))
			add(fmt.Sprintf("%s as base64url from byte %d", c.name, k), base64.URLEncoding.EncodeToString([]byte(c.value[k:])))
		}
	}
	return l
}

// assertNone fails when text, as it is or as a reader could decode it (HTML entities, percent-escapes,
// JSON escapes, fullwidth and invisible characters), shows any credential form; it prints the form's name
// and reports whether text is clean.
func (l echoLeaks) assertNone(t *testing.T, where, text string) bool {
	t.Helper()
	views := []string{text, html.UnescapeString(text)}
	if u, err := url.PathUnescape(text); err == nil {
		views = append(views, u)
	}
	for _, line := range strings.Split(text, "\n") {
		var s string
		if json.Unmarshal([]byte(`"`+line+`"`), &s) == nil {
			views = append(views, s)
		}
	}
	var decoded any
	if json.Unmarshal([]byte(text), &decoded) == nil {
		views = append(views, strings.Join(jsonStrings(decoded), "\n"))
	}
	for _, v := range views {
		v = readerFold(v)
		skel := notAlnum.ReplaceAllString(v, "")
		for i := 0; i+8 <= len(v); i++ {
			if name, ok := l.runs[v[i:i+8]]; ok {
				t.Errorf("%s shows the %s", where, name)
				return false
			}
		}
		for i := 0; i+8 <= len(skel); i++ {
			if name, ok := l.skel[skel[i:i+8]]; ok {
				t.Errorf("%s shows the %s", where, name)
				return false
			}
		}
	}
	return true
}

// jsonStrings returns every string in a decoded JSON value.
func jsonStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, jsonStrings(e)...)
		}
		return out
	case map[string]any:
		var out []string
		for k, e := range v {
			out = append(out, k)
			out = append(out, jsonStrings(e)...)
		}
		return out
	}
	return nil
}

// readerFold reads fullwidth letters as ASCII, drops invisible characters and ignores case.
func readerFold(s string) string {
	return strings.ToLower(strings.Map(func(r rune) rune {
		switch {
		case r >= 0xff01 && r <= 0xff5e:
			return r - 0xfee0
		case unicode.In(r, unicode.Cf, unicode.Mn, unicode.Me):
			return -1
		}
		return r
	}, s))
}
