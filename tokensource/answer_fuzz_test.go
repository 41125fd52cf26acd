package tokensource

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// expand fills an answer template with forms of what the request carried, so that the fuzzer works with
// the credentials of this very request: {S} the secret, {SU} upper-cased, {SH} hex, {SB} base64, {SP}
// percent-encoded, {SF} fullwidth, {SZ} split by zero-width spaces, {ST} each character in an HTML tag,
// {SE} HTML entities, {SJ} JSON
// escapes, {SC} cut short, {B} the request body in base64, {A} the Authorization header, {C} the client
// assertion, {T} the token issued before, {K} the gateway key, {R} the route key. A name ending in '_'
// (such as {SH_}) is the form split by spaces every 9 characters, too short to be taken for a token, so
// that only the credential rule can remove it.
func expand(template, secretValue string, sent sentRequest, authorization string) string {
	forms := map[string]string{
		"S":  secretValue,
		"SU": strings.ToUpper(secretValue),
		"SH": hex.EncodeToString([]byte(secretValue)),
		"SB": base64.StdEncoding.EncodeToString([]byte(secretValue)),
		"SP": percentAll(secretValue),
		"SF": mapRunes(secretValue, func(r rune) string {
			if r > ' ' && r < 0x7f {
				r += 0xfee0
			}
			return string(r)
		}),
		"SZ": mapRunes(secretValue, func(r rune) string { return string(r) + "\u200b" }),
		"ST": mapRunes(secretValue, func(r rune) string { return "<i>" + string(r) + "</i>" }),
		"SE": mapRunes(secretValue, func(r rune) string { return fmt.Sprintf("&#%d;", r) }),
		"SJ": mapRunes(secretValue, func(r rune) string { return fmt.Sprintf(`\\u%04x`, r) }),
		"SC": secretValue[:len(secretValue)*3/4],
		"B":  base64.StdEncoding.EncodeToString([]byte(sent.body)),
		"A":  authorization,
		"C":  sent.assertion,
		"T":  echoIssued,
		"K":  echoAPIKey,
		"R":  echoRouteKey,
	}
	var pairs []string
	for name, form := range forms {
		pairs = append(pairs, "{"+name+"}", form, "{"+name+"_}", chunked(form, 9))
	}
	return strings.NewReplacer(pairs...).Replace(template)
}

var fuzzStyles = []struct {
	auth    AuthStyle
	request RequestStyle
}{{AuthBasicHeader, RequestForm}, {AuthBody, RequestForm}, {AuthBody, RequestJSON}, {AuthClientSecretJWT, RequestForm}}

// For any answer of a token endpoint (any status, content type and body, made of what the request
// carried in any form), and any client secret: nothing of 8 characters or more of any credential, in any
// form, reaches the error's text, its hint, its fields or the JSON /routes shows; what is shown is
// printable ASCII; a code shown is a registered one. Its seeds, one for each form a probe used, are in
// testdata/fuzz/FuzzEndpointAnswer.
func FuzzEndpointAnswer(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, style uint8, status uint16, contentType, template, secretValue string) {
		if len(secretValue) < minRun || len(secretValue) > 64 || !utf8.ValidString(secretValue) {
			secretValue = echoSecret
		}
		s := fuzzStyles[int(style)%len(fuzzStyles)]
		fetcher, err := NewFetcher(Config{TokenURL: "https://auth.example/oauth/token", ClientID: echoClientID,
			ClientSecret: secretValue, AuthStyle: s.auth, RequestStyle: s.request,
			TokenHeaders: map[string]string{"X-Gateway-Key": echoAPIKey}, Sensitive: []string{echoRouteKey}},
			Options{Clock: fixedClock(now)})
		if err != nil {
			t.Fatalf("NewFetcher: %v", err) // the config is valid; this prints no secret
		}
		issued := echoIssued
		fetcher.issued.Store(&issued)
		req, sent, err := newRequest(context.Background(), fetcher.cfg, s.auth, now)
		if err != nil {
			t.Fatalf("newRequest failed")
		}
		authorization := req.Header.Get("Authorization")
		body := expand(template, secretValue, sent, authorization)
		ix := newLeakIndex(
			credential{"client secret", secretValue, true},
			credential{"client secret, form-encoded", url.QueryEscape(secretValue), true},
			credential{"Basic credentials", url.QueryEscape(echoClientID) + ":" + url.QueryEscape(secretValue), false},
			credential{"Authorization header", authorization, true},
			credential{"gateway key", echoAPIKey, true},
			credential{"route key", echoRouteKey, true},
			credential{"issued token", echoIssued, true},
			credential{"client assertion", sent.assertion, true},
			credential{"request body", sent.body, false},
		)
		creds := fetcher.filter(sent)
		a := answer{status: 100 + int(status)%500, contentType: contentType, body: []byte(body)}
		tok, err := fetcher.read(a, creds)
		tok, err = fetcher.settle(tok, err, s.auth, creds)
		if err == nil {
			ix.assertNoLeak(t, "the granted scope", tok.Scope)
			assertPrintable(t, "the granted scope", tok.Scope)
		} else {
			checkShownError(t, ix, err)
		}
		// The same text as a network error's (Go quotes what a broken endpoint sent).
		_, err = fetcher.settle(nil, fetcher.networkError(errors.New(body), creds()), s.auth, creds)
		checkShownError(t, ix, err)
	})
}

func checkShownError(t *testing.T, ix leakIndex, err error) {
	t.Helper()
	e, ok := AsError(err)
	if !ok {
		t.Fatalf("not an *Error")
	}
	assertShowsNoCredential(t, ix, e)
	if e.Code != "" && !registeredCodes[e.Code] {
		t.Errorf("an unregistered code is shown")
	}
	if len(e.Description) > maxDescription {
		t.Errorf("a description of %d bytes", len(e.Description))
	}
	for where, text := range map[string]string{"Error()": e.Error(), "Hint()": e.Hint(), "Description": e.Description,
		"URI": e.URI, "Snippet": e.Snippet, "Keys": strings.Join(e.Keys, " "), "Reason": e.Reason} {
		assertPrintable(t, where, text)
	}
}

// assertPrintable fails when text holds anything but printable ASCII, which a reader could take for
// something that was not checked.
func assertPrintable(t *testing.T, where, text string) {
	t.Helper()
	for i := 0; i < len(text); i++ {
		if text[i] < 0x20 || text[i] > 0x7e {
			t.Errorf("%s holds byte %#x at %d", where, text[i], i)
			return
		}
	}
	if html.UnescapeString(text) != text {
		t.Errorf("%s holds an HTML entity", where)
	}
}

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }
