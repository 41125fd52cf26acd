package tokensource

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Every trick an endpoint could use to keep a reader's view apart from what was checked is undone.
func TestNormalize(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "Client authentication failed", "Client authentication failed"},
		{"HTML entities", "a &lt;b&gt; &#x73;&#101;&amp;", "a <b> se&"},
		{"entities nested", "&amp;amp;lt;", "<"},
		{"percent", "s%33cr%2Fet", "s3cr/et"},
		{"percent nested", "%2541", "A"},
		{"malformed percent kept", "100% sure %zz", "100% sure %zz"},
		{"JSON escapes", `\u0073\u0065\u0063 \"q\" \/`, `sec "q" /`},
		{"surrogate pair", `\ud83d\ude00x`, "?x"},
		{"Go escapes", `\x41\x42 \U00000043`, "AB C"},
		{"fullwidth", "ｓｅｃｒｅｔ－１", "secret-1"},
		{"fullwidth percent", "％４１", "A"},
		{"zero-width and joiners", "se\u200bc\u200dr\u2060e\ufefft\u00ad", "secret"},
		{"combining marks", "s\u0336e\u0336c\u0301", "sec"},
		{"Hangul filler", "se\u3164cret", "secret"},
		{"Cyrillic look-alikes", "ѕесrеt", "secret"},
		{"Greek look-alikes", "ΑΒΕ οκ", "ABE ok"},
		{"a word with a letter that looks like none", "Ungültige Anmeldedaten", "? Anmeldedaten"},
		{"math bold in a word", "s𝐞cret here", "? here"},
		{"controls and spaces collapse", "a\r\n\tb \u00a0 c\u2003d", "a b c d"},
		{"invalid UTF-8 separates", "ab\xffcd", "ab?cd"},
		{"typographic punctuation", "“quoted” – it’s", `"quoted" - it's`},
	}
	for _, tt := range tests {
		got, ok := normalize(tt.in)
		assert.True(t, ok, tt.name)
		assert.Equal(t, tt.want, got, tt.name)
	}
	_, ok := normalize("%" + strings.Repeat("25", maxDecodes) + "41")
	assert.False(t, ok, "escapes nested deeper than the rounds are withheld")
}

// A credential's own letters are kept one by one, so that its ASCII part is still looked for.
func TestNormalizeSecretKeepsASCIIBesideForeignLetters(t *testing.T) {
	assert.True(t, normalizeSecret("ääääabcdefgh") == "????abcdefgh", "a foreign letter becomes ? alone") // prints no secret
	f := newFilter([]secret{{"ääääabcdefgh", true}})
	assert.False(t, f.clean("x abcdefgh y"))
}

func TestTheRunsOfACredentialAreFoundInEveryForm(t *testing.T) {
	f := newFilter([]secret{{"Secret-Value-42", true}, {"body=x&client_secret=abc", false}})
	for name, text := range map[string]string{
		"a run of 8":                         "value: ret-Valu",
		"case":                               "SECRET-VALUE-42",
		"spaced out":                         "s e c r e t v a l",
		"inside what a page takes for a tag": "Sec ret <Val ue 42>",
		"split by tags":                      "Se<b>cr</b>et<i>-Val</i>ue",
		"hex":                                "5365637265742d56616c7565",
		"base64 shifted by 1":                "ZWNyZXQtVmFsdWUtNDI",
		"the body in base64":                 "Ym9keT14JmNsaWVudF9zZWNyZXQ9YWJj",
	} {
		assert.False(t, f.clean(text), name)
	}
	assert.True(t, f.clean("the client secret is wrong"), "ordinary words")
	assert.True(t, f.clean("body=x"), "the body's own words count only encoded")
	newLeakIndex(credential{"secret", "Secret-Value-42", true}).
		assertEqual(t, "secret *** is wrong", f.text("secret SECRET-VALUE-42 is wrong", maxDescription, false))
}

func TestAShortCredentialIsRemovedWhole(t *testing.T) {
	f := newFilter([]secret{{"abc12", true}, {"ab", true}})
	assert.True(t, f.text("key ABC12 and ab", maxDescription, false) == "key *** and ab",
		"abc12 is removed whole, ab (under 4 characters) is not looked for") // prints no secret
}

func TestRunsThatCouldBeTokensAreDropped(t *testing.T) {
	var f *filter // no credentials known: tokens are still dropped
	assert.Equal(t, "token *** expired", f.text("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc expired", maxDescription, false))
	assert.Equal(t, "request id 0f8e2c1a-77 failed", f.text("request id 0f8e2c1a-77 failed", maxDescription, false),
		"under 20 characters stays in a description")
	assert.Equal(t, "abc *** *** Sign in", f.text("abc x9f8e2c1a text/html Sign in", maxSnippet, true),
		"in a 2xx body, any 8 token characters that are not one plain word are dropped")
	assert.Len(t, f.text(strings.Repeat("word ", 100), maxDescription, false), maxDescription-1)
	assert.Equal(t, "lookup auth.supplier-internal.example on 10.96.0.10:***",
		f.text("lookup auth.supplier-internal.example on 10.96.0.10:53/"+strings.Repeat("a", minOpaque), maxDescription, false, "auth.supplier-internal.example"),
		"the route's own host stays whole")
}

func TestOnlyRegisteredCodesAreShown(t *testing.T) {
	for _, code := range []string{"invalid_client", "invalid_dpop_proof", "use_dpop_nonce", "slow_down", "invalid_client_metadata"} {
		got, unregistered := shownCode(code)
		assert.Equal(t, code, got)
		assert.False(t, unregistered)
	}
	for _, v := range []any{"INVALID_CLIENT", "invalid_client ", "s3cr3t-value", 401.0, map[string]any{"code": 1}} {
		got, unregistered := shownCode(v)
		assert.Empty(t, got)
		assert.True(t, unregistered, "%v", v)
	}
	got, unregistered := shownCode(nil)
	assert.Empty(t, got)
	assert.False(t, unregistered, "no error field at all")
}

func TestKeyNamesAreShownOnlyWhenTheyReadAsIdentifiers(t *testing.T) {
	for _, k := range []string{"access_token", "expires_in", "token_type", "accessToken", "refreshTokenExpiresIn",
		"ID", "ACCESS_TOKEN", "x509", "oauth2ClientId", "_links", "sha256"} {
		assert.True(t, identifierLike(k, ""), k)
	}
	for _, k := range []string{"", "eyJhbGciOiJIUzI1NiJ9", "k9x2m7q4", "aB3dE5fGhJ", "a.b", "key with space",
		"abcdefghijklmnopqrstu", "tok_12345678", strings.Repeat("a_", 17)} {
		assert.False(t, identifierLike(k, ""), k)
	}
	f := newFilter([]secret{{"chars-9Zq-secret", true}})
	shown, hidden := f.shownKeys([]string{"access_token", "secret-chars-9Zq", "k9x2m7q4"})
	newLeakIndex(credential{"secret", "chars-9Zq-secret", true}).assertEqual(t, "access_token", strings.Join(shown, ","))
	assert.Equal(t, 2, hidden, "the one holding a credential is hidden though it reads as an identifier")
	assert.Equal(t, "access_token and 2 more not shown (not identifier-like)", keysText(shown, hidden))
}

func TestAnErrorURIShowsSchemeHostAndPathOnly(t *testing.T) {
	const secretValue = "route-secret-Zq9"
	f := newFilter([]secret{{secretValue, true}})
	leaks := newLeakIndex(credential{"secret", secretValue, true})
	tests := []struct{ name, in, want string }{
		{"query and fragment", "https://idp.example/docs/errors/invalid_client.html?lang=en#top", "https://idp.example/docs/errors/invalid_client.html"},
		{"user info", "https://user:pw@idp.example:8443/e", "https://idp.example:8443/e"},
		{"the secret in the path", "https://idp.example/e/" + secretValue, "https://idp.example/e/***"},
		{"a token in the path", "https://idp.example/t/eyJhbGciOiJIUzI1NiJ9/x", "https://idp.example/t/***/x"},
		{"escapes in a segment", "https://idp.example/%73ecret%20x/y", "https://idp.example/***/y"},
		{"a token as a host label", "https://6b9e3f2a71d04c88.evil.example/", ""},
		{"not http", "javascript:alert(1)", ""},
		{"relative", "/relative/path", ""},
		{"HTML-escaped", "https&#x3a;//idp.example/", ""},
	}
	for _, tt := range tests {
		leaks.assertEqual(t, tt.want, f.shownURI(tt.in), tt.name)
	}
}

func TestANonJSONBodyShowsFieldNamesOrAStrictStart(t *testing.T) {
	var f *filter
	assert.Equal(t, "form fields access_token, expires_in, token_type (values not shown)",
		f.shownBody([]byte("access_token=abc&token_type=bearer&expires_in=3600")))
	assert.Equal(t, `"<html><body>Sign in</body></html>"`, f.shownBody([]byte("<html><body>Sign in</body></html>")))
	assert.Equal(t, `"***"`, f.shownBody([]byte("0123456789abcdefXYZ")), "a bare token")
	assert.Equal(t, "text/html", shownType("text/html; charset=utf-8"))
	assert.Equal(t, "another content type", shownType("application/vnd.s3cr3t-value+json"))
}
