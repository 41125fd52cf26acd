package tokensource

import (
	"strings"
	"testing"
	"time"
)

// Any answer of a token endpoint gives a token with a lifetime within the clamps, or an *Error: never a
// panic, and never the route's secret.
func FuzzParseAnswer(f *testing.F) {
	for _, seed := range []struct{ body, path string }{
		{`{"access_token":"t","expires_in":3600}`, "access_token"},
		{`{"data":{"token":"t","expires_in":"60"}}`, "data.token"},
		{`{"access_token":"t","expires_in":1e300}`, "access_token"},
		{`{"access_token":"t","expires_in":-5}`, "access_token"},
		{`{"access_token":"a.eyJleHAiOjE4MDAwMDAwMDB9.s"}`, "access_token"},
		{`{"access_token":{"nested":1}}`, "access_token"},
		{`access_token=abc%2Bdef&token_type=bearer`, "access_token"},
		{`<html>no</html>`, "access_token"},
		{`{"a":{"b":{"c":"deep"}},"expires_at":"2030-01-01T00:00:00Z"}`, "a.b.c"},
		{`null`, "x"},
	} {
		f.Add([]byte(seed.body), seed.path)
	}
	const secret = "fuzz-secret-value"
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		if !ValidPath(path) {
			return
		}
		cfg := Config{TokenURL: "https://auth.example/t", ClientID: "c", ClientSecret: secret, TokenPath: path,
			ExpiresAtPath: "expires_at"}.withDefaults()
		tok, err := parseAnswer(cfg, answer{status: 200, body: body}, now, newFilter(credentialsOf(cfg)))
		if err != nil {
			if _, ok := AsError(err); !ok {
				t.Fatalf("not an *Error: %v", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the secret in an error: %v", err)
			}
			return
		}
		if tok.Value == "" {
			t.Fatal("an empty token was accepted")
		}
		if l := tok.Lifetime(); l < MinLifetime || l > MaxLifetime {
			t.Fatalf("lifetime %s outside the clamps", l)
		}
	})
}

// Whatever a token endpoint echoes, no run of 8 characters of the route's secret, in any form, reaches a
// description, a body's snippet, a key name, an error_uri or a network error's reason.
func FuzzRedaction(f *testing.F) {
	f.Add([]byte("secret=s3cret-value&x=1"), "s3cret-value")
	f.Add([]byte(`{"error_description":"bad s3cr%2Fet"}`), "s3cr/et")
	f.Add([]byte("<html>\x00\x01s3cr\x7fet</html>"), "s3cr.et")
	f.Fuzz(func(t *testing.T, body []byte, value string) {
		if len(value) < minRun {
			return // the rule is about runs of minRun characters
		}
		ix := newLeakIndex(credential{name: "secret", value: value, raw: true})
		flt := newFilter([]secret{{value, true}})
		shown, _ := flt.shownKeys([]string{string(body)})
		for where, out := range map[string]string{
			"description": flt.text(string(body), maxDescription, false), "snippet": flt.shownBody(body),
			"key": strings.Join(shown, ""), "uri": flt.shownURI(string(body)),
			"reason": flt.text(string(body), maxDescription, false, "auth.example"),
		} {
			ix.assertNoLeak(t, where, out)
		}
	})
}
