package tokensource

import (
	"fmt"
	"mime"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// What of a token endpoint's answer is shown (in an app's 502, a log line, check's output, /routes), each
// piece built from normalised text so that it is safe by construction.

const (
	// maxDescription is how much of an error_description, or of a network error, is shown.
	maxDescription = 200
	// maxSnippet is how much of a body that is not JSON is shown.
	maxSnippet = 80
	// minOpaque is the length from which a run of token characters is taken for a token, whoever's it is.
	minOpaque = 20
	// maxKeys is how many key names a KindNoToken error lists.
	maxKeys = 20
)

// registeredCodes are the error codes of RFC 6749 §5.2 and of the IANA OAuth Extensions Error Registry:
// words of the standards, which an endpoint can send back but cannot use to carry anything else.
var registeredCodes = map[string]bool{
	// RFC 6749
	"invalid_request": true, "invalid_client": true, "invalid_grant": true, "unauthorized_client": true,
	"unsupported_grant_type": true, "invalid_scope": true, "access_denied": true,
	"unsupported_response_type": true, "server_error": true, "temporarily_unavailable": true,
	// RFC 6750, RFC 7009, RFC 9470
	"invalid_token": true, "insufficient_scope": true, "unsupported_token_type": true,
	"insufficient_user_authentication": true,
	// OpenID Connect
	"interaction_required": true, "login_required": true, "account_selection_required": true,
	"consent_required": true, "invalid_request_uri": true, "invalid_request_object": true,
	"request_not_supported": true, "request_uri_not_supported": true, "registration_not_supported": true,
	// UMA 2.0
	"need_info": true, "request_denied": true, "request_submitted": true,
	// RFC 7591 (dynamic client registration)
	"invalid_redirect_uri": true, "invalid_client_metadata": true, "invalid_software_statement": true,
	"unapproved_software_statement": true,
	// RFC 8628 (device grant), RFC 8707 (resource indicators)
	"authorization_pending": true, "slow_down": true, "expired_token": true, "invalid_target": true,
	// RFC 9200 (ACE), RFC 9396 (rich authorization requests), RFC 9449 (DPoP), RFC 9207
	"unsupported_pop_key": true, "incompatible_ace_profiles": true, "invalid_authorization_details": true,
	"invalid_dpop_proof": true, "use_dpop_nonce": true, "invalid_iss": true,
}

// UnregisteredCode is what Cause shows for an error code that is not registered, instead of its text.
const UnregisteredCode = "(unregistered error code)"

// shownCode returns the answer's error code when it is a registered one; unregistered is set when the
// answer has an error field that is not.
func shownCode(v any) (code string, unregistered bool) {
	if v == nil {
		return "", false
	}
	if s, ok := v.(string); ok && registeredCodes[s] {
		return s, false
	}
	return "", true
}

// text is endpoint text as it may be shown: normalised, with every credential removed and every run of
// token characters that could be a token (minOpaque and longer; with strict, any of minRun and longer
// that is not a plain word), cut to max. keep are strings of the route's own settings (the token
// endpoint's host) that stay whole.
func (f *filter) text(s string, max int, strict bool, keep ...string) string {
	t, ok := normalize(s)
	if !ok {
		return marker
	}
	t = dropOpaque(f.scrub(t), strict, keep)
	if len(t) > max {
		t = strings.TrimRight(t[:max], " ")
	}
	return f.scrub(t)
}

// isTokenByte reports the characters of RFC 6750's b64token, which tokens and their encodings are made of.
func isTokenByte(c byte) bool { return isAlnum(c) || strings.IndexByte("-._~+/=", c) >= 0 }

// dropOpaque puts marker in place of each run of token characters that could be a token.
func dropOpaque(t string, strict bool, keep []string) string {
	kept := make([]bool, len(t))
	lower := strings.ToLower(t)
	for _, k := range keep {
		k = strings.ToLower(k)
		for from := 0; k != "" && from < len(lower); {
			i := strings.Index(lower[from:], k)
			if i < 0 {
				break
			}
			for j := from + i; j < from+i+len(k); j++ {
				kept[j] = true
			}
			from += i + len(k)
		}
	}
	var b strings.Builder
	for i := 0; i < len(t); {
		if kept[i] || !isTokenByte(t[i]) {
			b.WriteByte(t[i])
			i++
			continue
		}
		j := i
		for j < len(t) && !kept[j] && isTokenByte(t[j]) {
			j++
		}
		if run := t[i:j]; len(run) >= minOpaque || strict && len(run) >= minRun && !plainWord(run) {
			b.WriteString(marker)
		} else {
			b.WriteString(run)
		}
		i = j
	}
	return b.String()
}

// plainWord reports a word of letters only, capitalised or not, or in capitals.
func plainWord(w string) bool {
	upper := 0
	for i := 0; i < len(w); i++ {
		switch c := w[i]; {
		case c >= 'a' && c <= 'z':
		case c >= 'A' && c <= 'Z':
			upper++
		default:
			return false
		}
	}
	return upper == len(w) || upper == 0 || upper == 1 && w[0] >= 'A' && w[0] <= 'Z'
}

// identifierLike reports a name that reads as an identifier, not as a value: at most 32 characters of
// letters, digits, '_', '-' (and extra), at most 4 digits, few capitals, no long run of letters without a
// break, and few changes between letters and digits. Random strings of that length rarely pass all.
func identifierLike(s, extra string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	digits, upper, switches, run := 0, 0, 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		digit := c >= '0' && c <= '9'
		switch {
		case letter || digit:
		case c == '_' || c == '-' || strings.IndexByte(extra, c) >= 0:
			run = 0
			continue
		default:
			return false
		}
		if digit {
			digits++
		}
		if c >= 'A' && c <= 'Z' {
			upper++
		}
		if i > 0 {
			p := s[i-1]
			if pDigit := p >= '0' && p <= '9'; isAlnum(p) && pDigit != digit {
				switches++
			}
			if c >= 'A' && c <= 'Z' && p >= 'a' && p <= 'z' {
				run = 0 // camelCase starts a word
			}
		}
		if run++; run > 16 {
			return false
		}
	}
	allCaps := upper > 0 && strings.ToUpper(s) == s
	return digits <= 4 && switches <= 2 && (allCaps || upper <= 1 || upper*4 <= len(s))
}

// shownKeys returns the key names that read as identifiers and show no credential, and how many others
// there were.
func (f *filter) shownKeys(keys []string) (shown []string, hidden int) {
	for _, k := range keys {
		if len(shown) < maxKeys && identifierLike(k, "") && f.clean(k) {
			shown = append(shown, k)
		} else {
			hidden++
		}
	}
	return shown, hidden
}

// shownURI returns an error_uri as scheme, host and path, without user info, query or fragment (where a
// URL carries tokens), with each path segment that does not read as a word replaced by marker; "" when it
// is not an http(s) URL, its host does not read as a host name, or it shows a credential. It is parsed as
// sent, so that decoding cannot move a query into the path.
func (f *filter) shownURI(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Hostname() == "" {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	if net.ParseIP(host) == nil {
		for _, label := range strings.Split(host, ".") {
			if !identifierLike(label, "") {
				return ""
			}
		}
	}
	if port := u.Port(); port != "" {
		host = net.JoinHostPort(host, port)
	}
	var b strings.Builder
	b.WriteString(u.Scheme + "://" + host)
	for _, seg := range strings.Split(strings.TrimPrefix(u.Path, "/"), "/") {
		if seg == "" {
			continue
		}
		if n, ok := normalize(seg); ok && n == seg && identifierLike(seg, ".~") && f.clean(seg) {
			b.WriteString("/" + seg)
		} else {
			b.WriteString("/" + marker)
		}
	}
	shown := b.String()
	if len(shown) > maxDescription || !f.clean(shown) {
		return ""
	}
	return shown
}

// knownTypes are the content types a KindNotJSON error names; others are "another type".
var knownTypes = map[string]bool{
	"text/html": true, "text/plain": true, "text/xml": true, "application/xml": true,
	"application/x-www-form-urlencoded": true, "application/octet-stream": true, "application/json": true,
	"application/problem+json": true, "application/jwt": true, "application/xhtml+xml": true,
	"text/javascript": true, "application/javascript": true,
}

// shownType names a body's content type when it is one of knownTypes.
func shownType(contentType string) string {
	if contentType == "" {
		return "no content type"
	}
	if mt, _, err := mime.ParseMediaType(contentType); err == nil && knownTypes[mt] {
		return mt
	}
	return "another content type"
}

// shownBody returns what a 2xx answer that is not JSON shows: the names of a form's fields (a form is
// what most such answers are, and its values are tokens), or else the start of the text with everything
// removed that could be a token (strictly: that is where a token would be).
func (f *filter) shownBody(body []byte) string {
	text := strings.TrimSpace(string(body))
	if formBody.MatchString(text) {
		if form, err := url.ParseQuery(text); err == nil {
			names := make([]string, 0, len(form))
			for k := range form {
				names = append(names, k)
			}
			sort.Strings(names)
			return "form fields " + keysText(f.shownKeys(names)) + " (values not shown)"
		}
	}
	return strconv.Quote(f.text(text, maxSnippet, true))
}

// keysText lists shown key names and counts the hidden ones.
func keysText(shown []string, hidden int) string {
	list := strings.Join(shown, ", ")
	why := " (not identifier-like)"
	if len(shown) == maxKeys {
		why = ""
	}
	switch {
	case hidden == 0 && list == "":
		return "none"
	case hidden == 0:
		return list
	case list == "":
		return fmt.Sprintf("%d not shown%s", hidden, why)
	}
	return fmt.Sprintf("%s and %d more not shown%s", list, hidden, why)
}

// formBody is a body of form fields: name=value pairs joined by '&'.
var formBody = regexp.MustCompile(`^[A-Za-z0-9_.\-]+=[^&]*(&[A-Za-z0-9_.\-]+=[^&]*)*$`)
