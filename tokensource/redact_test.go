package tokensource

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

// The route of the echo tests: each credential long enough that 8 of its characters are a real leak.
const (
	echoClientID = "procu-buyer-4821"
	echoSecret   = "s3cr/et+With&odd=chars-9Zq"
	echoAPIKey   = "gw-key-8c1f0e9a"
	echoRouteKey = "supplier-api-key-77aa"
	echoIssued   = "tok.3vQ9xZ-81bfa6c2d4e0f7a9"
)

// echo is what a token endpoint sends back to the second request (the first gets echoIssued), made from
// what it received.
type echo func(req testkit.TokenRequest) (status int, contentType, body string)

func errorJSON(fields ...string) echo {
	return func(testkit.TokenRequest) (int, string, string) {
		obj := map[string]string{}
		for i := 0; i+1 < len(fields); i += 2 {
			obj[fields[i]] = fields[i+1]
		}
		b, _ := json.Marshal(obj)
		return http.StatusUnauthorized, "application/json", string(b)
	}
}

// chunked splits s with spaces every n characters: too short for the run-of-token-characters rule, so
// only the credential rule can catch it.
func chunked(s string, n int) string {
	var parts []string
	for len(s) > n {
		parts, s = append(parts, s[:n]), s[n:]
	}
	return strings.Join(append(parts, s), " ")
}

func entities(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i%2 == 0 {
			fmt.Fprintf(&b, "&#x%X;", r)
		} else {
			b.WriteString(strings.NewReplacer("&", "&amp;", "/", "&sol;", "+", "&plus;").Replace(string(r)))
		}
	}
	return b.String()
}

func mapRunes(s string, f func(r rune) string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteString(f(r))
	}
	return b.String()
}

// Whatever a token endpoint echoes of what it received, in whatever form, no credential of the route
// reaches an error's text, its hint or the JSON /routes would show; the registered error code and the
// harmless words of the description still do.
func TestAnEndpointsEchoShowsNoCredential(t *testing.T) {
	fullwidth := mapRunes(echoSecret, func(r rune) string { return string(r + 0xfee0) })
	zeroWidth := mapRunes(echoSecret, func(r rune) string { return string(r) + "\u200b" })
	cyrillic := mapRunes(echoSecret, func(r rune) string {
		return strings.NewReplacer("e", "е", "c", "с", "o", "о", "a", "а", "s", "ѕ").Replace(string(r)) + " "
	})
	jsonEscaped := mapRunes(echoSecret, func(r rune) string { return fmt.Sprintf(`\u%04x`, r) })
	tests := []struct {
		name    string
		style   AuthStyle
		request RequestStyle
		echo    echo
		want    []string // in the error's text
	}{
		{"upper-case", "", "", errorJSON("error", "invalid_client", "error_description", "client secret "+strings.ToUpper(echoSecret)+" is wrong"),
			[]string{"answered 401 invalid_client (client secret *** is wrong)"}},
		{"hex, split", "", "", errorJSON("error", "invalid_client", "error_description", "secret "+chunked(hex.EncodeToString([]byte(echoSecret)), 10)+" is wrong"),
			[]string{"invalid_client (secret *** is wrong)"}},
		{"HTML-escaped", "", "", errorJSON("error", "invalid_client", "error_description", "secret "+entities(echoSecret)+" is wrong"),
			[]string{"invalid_client (secret *** is wrong)"}},
		{"last characters cut", "", "", errorJSON("error", "invalid_client", "error_description", "secret "+echoSecret[:len(echoSecret)-5]+"... is wrong"),
			[]string{"invalid_client (secret ***... is wrong)"}},
		{"request body in base64, split", AuthBody, "", func(req testkit.TokenRequest) (int, string, string) {
			return errorJSON("error", "invalid_request", "error_description", "got "+chunked(base64.StdEncoding.EncodeToString([]byte(req.Body)), 12))(req)
		}, []string{"invalid_request (got ***"}},
		{"JSON body in base64", AuthBody, RequestJSON, func(req testkit.TokenRequest) (int, string, string) {
			return errorJSON("error", "invalid_request", "error_description", "got "+base64.URLEncoding.EncodeToString([]byte(req.Body)))(req)
		}, []string{"invalid_request (got ***"}},
		{"Basic credentials", "", "", func(req testkit.TokenRequest) (int, string, string) {
			return errorJSON("error", "invalid_client", "error_description", "header "+chunked(req.Header.Get("Authorization"), 9))(req)
		}, []string{"invalid_client (header Basic ***)"}},
		{"the token issued before", "", "", errorJSON("error", "invalid_grant", "error_description", "token "+chunked(echoIssued, 9)+" was revoked"),
			[]string{"invalid_grant (token *** was revoked)"}},
		{"token-like key names", "", "", func(testkit.TokenRequest) (int, string, string) {
			b, _ := json.Marshal(map[string]any{echoIssued: 1, "secret-" + echoSecret[17:]: 2, "k9x2m7q4": 3,
				"expires_in": 60, "token_type": "bearer"})
			return http.StatusOK, "application/json", string(b)
		}, []string{"keys present: expires_in, token_type and 3 more not shown"}},
		{"percent-encoded", "", "", errorJSON("error", "invalid_client", "error_description", "secret "+percentAll(echoSecret)),
			[]string{"invalid_client (secret ***)"}},
		{"fullwidth", "", "", errorJSON("error", "invalid_client", "error_description", "secret "+fullwidth+" is wrong"),
			[]string{"invalid_client (secret *** is wrong)"}},
		{"zero-width split", "", "", errorJSON("error", "invalid_client", "error_description", "secret "+zeroWidth+" is wrong"),
			[]string{"invalid_client (secret *** is wrong)"}},
		{"Cyrillic look-alikes, spaced", "", "", errorJSON("error", "invalid_client", "error_description", "secret "+cyrillic),
			[]string{"invalid_client (secret ***)"}},
		{"HTML tags between its characters", "", "", errorJSON("error", "invalid_client", "error_description", "secret <b>"+strings.Join(strings.Split(echoSecret, ""), "</b><i>")+"</i> is wrong"),
			[]string{"invalid_client (secret <b>***</i> is wrong)"}},
		{"JSON escapes as text", "", "", errorJSON("error", "invalid_client", "error_description", "secret "+jsonEscaped),
			[]string{"invalid_client (secret ***)"}},
		{"error_uri with a token", "", "", errorJSON("error", "invalid_client", "error_description", "Client authentication failed",
			"error_uri", "https://user:"+url.QueryEscape(echoSecret)+"@idp.example/errors/invalid_client?token="+echoIssued+"#"+echoSecret),
			[]string{"invalid_client (Client authentication failed) see https://idp.example/errors/invalid_client"}},
		{"the secret as the error code", "", "", errorJSON("error", echoSecret, "error_description", "Client authentication failed"),
			[]string{"answered 401 (unregistered error code) (Client authentication failed)"}},
		{"gateway and route keys", "", "", errorJSON("error", "invalid_request", "error_description", "keys "+strings.ToUpper(echoAPIKey)+" and "+echoRouteKey+" refused"),
			[]string{"invalid_request (keys *** and *** refused)"}},
		{"a form-encoded 200 with a token", "", "", func(testkit.TokenRequest) (int, string, string) {
			return http.StatusOK, "application/x-www-form-urlencoded", "access_token=" + url.QueryEscape(echoIssued) + "&token_type=bearer"
		}, []string{"form fields access_token, token_type (values not shown) (application/x-www-form-urlencoded, "}},
		{"an HTML 200 holding the secret", "", "", func(testkit.TokenRequest) (int, string, string) {
			return http.StatusOK, "text/html; charset=utf-8", "<html><title>Sign in " + url.PathEscape(echoSecret) + "</title></html>"
		}, []string{`"<html><title>Sign in ***</title></html>" (text/html, `}},
		{"client assertion", AuthClientSecretJWT, "", func(req testkit.TokenRequest) (int, string, string) {
			return errorJSON("error", "invalid_client", "error_description", "assertion "+chunked(req.Form.Get("client_assertion"), 9))(req)
		}, []string{"invalid_client (assertion ***)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got testkit.TokenRequest
			ts := testkit.NewTokenServer(t, func(n int64, req testkit.TokenRequest, w http.ResponseWriter) {
				if n == 1 {
					_, _ = fmt.Fprintf(w, `{"access_token":%q,"expires_in":60}`, echoIssued)
					return
				}
				got = req
				status, contentType, body := tt.echo(req)
				w.Header().Set("Content-Type", contentType)
				w.WriteHeader(status)
				_, _ = w.Write([]byte(body))
			})
			f, err := NewFetcher(Config{TokenURL: ts.URL + "/oauth/token", ClientID: echoClientID, ClientSecret: echoSecret,
				AuthStyle: tt.style, RequestStyle: tt.request, TokenHeaders: map[string]string{"X-Gateway-Key": echoAPIKey},
				Sensitive: []string{echoRouteKey}}, Options{})
			require.NoError(t, err)
			_, err = f.Fetch(context.Background())
			require.NoError(t, err)
			_, err = f.Fetch(context.Background())
			e, ok := AsError(err)
			require.True(t, ok, "an *Error")

			leaks := echoLeakIndex(got)
			assertShowsNoCredential(t, leaks, e)
			for _, want := range tt.want {
				leaks.assertContains(t, e.Error(), want)
			}
		})
	}
}

// echoLeakIndex is every credential of the echo route and of the request it sent.
func echoLeakIndex(req testkit.TokenRequest) leakIndex {
	return newLeakIndex(
		credential{"client secret", echoSecret, true},
		credential{"client secret, form-encoded", url.QueryEscape(echoSecret), true},
		credential{"Basic credentials", url.QueryEscape(echoClientID) + ":" + url.QueryEscape(echoSecret), false},
		credential{"Authorization header", req.Header.Get("Authorization"), true},
		credential{"gateway key", echoAPIKey, true},
		credential{"route key", echoRouteKey, true},
		credential{"issued token", echoIssued, true},
		credential{"client assertion", req.Form.Get("client_assertion"), true},
		credential{"request body", req.Body, false},
	)
}

// assertShowsNoCredential checks every text an *Error gives: its message, cause and hint, its fields, and
// the JSON /routes would show of it.
func assertShowsNoCredential(t testing.TB, ix leakIndex, e *Error) {
	t.Helper()
	status, _ := json.Marshal(map[string]string{"lastError": e.Error()})
	var decoded map[string]string
	require.NoError(t, json.Unmarshal(status, &decoded))
	for where, text := range map[string]string{
		"Error()": e.Error(), "Cause()": e.Cause(), "Hint()": e.Hint(), "the status JSON": string(status),
		"the status JSON's lastError": decoded["lastError"], "Description": e.Description, "URI": e.URI,
		"Snippet": e.Snippet, "Keys": strings.Join(e.Keys, " "), "Code": e.Code, "Reason": e.Reason,
	} {
		ix.assertNoLeak(t, where, text)
	}
}

// A malformed answer's bytes reach an error through Go's own message (which quotes the bad header line):
// the same rules hold there.
func TestANetworkErrorQuotingTheEndpointShowsNoCredential(t *testing.T) {
	var got testkit.TokenRequest
	ts := testkit.NewTokenServer(t, func(_ int64, req testkit.TokenRequest, w http.ResponseWriter) {
		got = req
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		writeRaw(buf, "HTTP/1.1 200 OK\r\nX-Echo "+strings.ToUpper(echoSecret)+" "+chunked(req.Header.Get("Authorization"), 9)+"\r\n\r\n")
	})
	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: echoClientID, ClientSecret: echoSecret}, Options{})
	require.NoError(t, err)
	_, err = f.Fetch(context.Background())
	e, ok := AsError(err)
	require.True(t, ok)
	assert.Equal(t, KindNetwork, e.Kind)
	leaks := echoLeakIndex(got)
	assertShowsNoCredential(t, leaks, e)
	leaks.assertContains(t, e.Cause(), "malformed MIME header", "Go's words stay")
}

func writeRaw(w *bufio.ReadWriter, s string) {
	_, _ = w.WriteString(s)
	_ = w.Flush()
}

// What an operator needs still comes through: registered codes, plain descriptions, vendor error numbers.
func TestHarmlessAnswersComeThrough(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"error":"invalid_client","error_description":"Client authentication failed"}`,
			"answered 401 invalid_client (Client authentication failed)"},
		{`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent is the client secret value, not the client secret ID."}`,
			"answered 401 invalid_client (AADSTS7000215: Invalid client secret provided. Ensure the secret being sent is the client secret value, not the client secret ID.)"},
		{`{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}`,
			"answered 401 use_dpop_nonce (Authorization server requires nonce in DPoP proof)"},
		{`{"error":"invalid_scope","error_description":"scope \"orders.write\" is not allowed for client procu-buyer-4821","error_uri":"https://idp.example/docs/errors/invalid_scope.html?lang=en"}`,
			`answered 401 invalid_scope (scope "orders.write" is not allowed for client procu-buyer-4821) see https://idp.example/docs/errors/invalid_scope.html`},
		{`{"error":"Unauthorized"}`, "answered 401 (unregistered error code)"},
	}
	for _, tt := range tests {
		ts := newTokenServer(t, func(_ int64, w http.ResponseWriter) {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(tt.body))
		})
		f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: echoClientID, ClientSecret: echoSecret}, Options{})
		require.NoError(t, err)
		_, err = f.Fetch(context.Background())
		e, ok := AsError(err)
		require.True(t, ok)
		assert.Equal(t, tt.want, e.Cause())
	}
}

// The endpoint's words joined to tokenproxy's own can spell a credential neither shows alone (here the
// description's last seven characters and the parenthesis that closes it): the whole message is checked.
func TestTheWholeMessageIsChecked(t *testing.T) {
	const joined = "Xq7-wz4)" // a secret that ends in the character Cause writes after a description
	ts := newTokenServer(t, func(_ int64, w http.ResponseWriter) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"bad Xq7-wz4"}`))
	})
	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: echoClientID, ClientSecret: joined}, Options{})
	require.NoError(t, err)
	_, err = f.Fetch(context.Background())
	e, ok := AsError(err)
	require.True(t, ok)
	leaks := newLeakIndex(credential{"client secret", joined, true})
	leaks.assertEqual(t, "bad Xq7-wz4", e.Description, "seven characters alone are no run of the secret")
	assertShowsNoCredential(t, leaks, e)
	leaks.assertEqual(t, "answered 400 invalid_client (bad ***", e.Cause())
}
