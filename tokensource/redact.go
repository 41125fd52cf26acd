package tokensource

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// minRedacted is the shortest credential hunted for in answers: shorter values would garble ordinary words.
const minRedacted = 4

// redactor removes a route's credentials from text a token endpoint sent back, in every form an endpoint
// might echo them: as sent, URL-encoded, JSON-escaped, and inside HTTP Basic's base64.
type redactor struct {
	values []string // longest first, so that a longer form is replaced before a part of it
}

func newRedactor(credentials []string) *redactor {
	seen := map[string]bool{}
	add := func(v string) {
		if len(v) >= minRedacted {
			seen[v] = true
		}
	}
	for _, c := range credentials {
		if len(c) < minRedacted {
			continue
		}
		add(c)
		add(url.QueryEscape(c))
		add(url.PathEscape(c))
		if b, err := json.Marshal(c); err == nil {
			add(strings.Trim(string(b), `"`))
		}
		add(base64.StdEncoding.EncodeToString([]byte(c)))
		add(base64.RawURLEncoding.EncodeToString([]byte(c)))
	}
	r := &redactor{}
	for v := range seen {
		r.values = append(r.values, v)
	}
	sort.Slice(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
	return r
}

// with returns a redactor that also hunts for more values (a request's own client assertion).
func (r *redactor) with(more ...string) *redactor {
	if len(more) == 0 || more[0] == "" {
		return r
	}
	return newRedactor(append(append([]string(nil), r.values...), more...))
}

func (r *redactor) redact(s string) string {
	for _, v := range r.values {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

// credentialsOf lists what a route must never see echoed: its secret (and the Basic credentials made of
// it), the values of its token request headers, and the values the caller marks sensitive.
func credentialsOf(c Config) []string {
	creds := []string{c.ClientSecret}
	if c.ClientSecret != "" {
		creds = append(creds, c.ClientID+":"+c.ClientSecret,
			url.QueryEscape(c.ClientID)+":"+url.QueryEscape(c.ClientSecret))
	}
	for _, v := range c.TokenHeaders {
		creds = append(creds, v)
	}
	return append(creds, c.Sensitive...)
}

var (
	opaqueRun = regexp.MustCompile(`[A-Za-z0-9_\-.~+/=]{20,}`)
	formBody  = regexp.MustCompile(`^[A-Za-z0-9_.\-]+=[^&]*(&[A-Za-z0-9_.\-]+=[^&]*)*$`)
	// sensitiveKey names form fields whose values are shown as [redacted] whatever their length.
	sensitiveKey = regexp.MustCompile(`(?i)token$|secret|passw|assertion|^code$|signature|key$`)
)

// snippet returns the first bytes of a body that is not JSON, printable, with the route's credentials and
// anything that could be a token redacted. A form-encoded body is decoded first, so that percent-escapes
// cannot cut a token into runs too short to be noticed.
func snippet(body []byte, r *redactor) string {
	const max = 80
	text := string(body)
	if trimmed := strings.TrimSpace(text); formBody.MatchString(trimmed) {
		if form, err := url.ParseQuery(trimmed); err == nil {
			keys := make([]string, 0, len(form))
			for k := range form {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			parts := make([]string, 0, len(keys))
			for _, k := range keys {
				v := form.Get(k)
				if sensitiveKey.MatchString(k) || len(v) >= 16 {
					v = "[redacted]"
				}
				parts = append(parts, k+"="+v)
			}
			text = strings.Join(parts, "&")
		}
	}
	// Made printable first, so that no mapping can spell a credential after redaction looked for it.
	text = strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f || c == '\uFFFD' {
			return '.'
		}
		return c
	}, text)
	text = r.redact(text)
	if len(text) > max {
		text = text[:max]
	}
	return opaqueRun.ReplaceAllString(text, "[redacted]")
}
