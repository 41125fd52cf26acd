package tokensource

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
)

// The oracle of the leak tests, written apart from the code it checks: it names the credential and the
// form it found, never the text, so that a failing test prints no secret.

// credential is a value a test route holds, named for failure messages.
type credential struct {
	name, value string
	raw         bool // its own characters count, not only its encodings
}

// leakIndex maps every run of minRun characters of every form of every credential, lower-cased, to a
// description of where it comes from ("client secret as hex").
type leakIndex struct{ runs, skel map[string]string }

func newLeakIndex(creds ...credential) leakIndex {
	ix := leakIndex{runs: map[string]string{}, skel: map[string]string{}}
	add := func(form, what string) {
		form = readerFold(form)
		for i := 0; i+minRun <= len(form); i++ {
			ix.runs[form[i:i+minRun]] = what
		}
		skel := alnumOnly(form)
		for i := 0; i+minRun <= len(skel); i++ {
			ix.skel[skel[i:i+minRun]] = what + ", letters and digits only"
		}
	}
	for _, c := range creds {
		if c.raw {
			add(c.value, c.name)
		}
		add(hex.EncodeToString([]byte(c.value)), c.name+" as hex")
		for k := 0; k < 3 && k < len(c.value); k++ {
			for name, enc := range map[string]*base64.Encoding{"std": base64.StdEncoding, "url": base64.URLEncoding,
				"raw std": base64.RawStdEncoding, "raw url": base64.RawURLEncoding} {
				add(enc.EncodeToString([]byte(c.value[k:])), fmt.Sprintf("%s as base64 %s from byte %d", c.name, name, k))
			}
		}
	}
	return ix
}

// leak returns what credential form text shows, read as it is and as a reader could decode it (HTML
// entities, percent-escapes, JSON string escapes, fullwidth and invisible characters), or "".
func (ix leakIndex) leak(text string) string {
	for _, view := range readerViews(text) {
		for i := 0; i+minRun <= len(view); i++ {
			if what, ok := ix.runs[view[i:i+minRun]]; ok {
				return what
			}
		}
		skel := alnumOnly(view)
		for i := 0; i+minRun <= len(skel); i++ {
			if what, ok := ix.skel[skel[i:i+minRun]]; ok {
				return what
			}
		}
	}
	return ""
}

// assertNoLeak fails the test, naming the form and where, when text shows a credential.
func (ix leakIndex) assertNoLeak(t testing.TB, where, text string) {
	t.Helper()
	if what := ix.leak(text); what != "" {
		t.Errorf("%s shows the %s", where, what)
	}
}

// assertContains checks that text contains want; it prints text only when the oracle found no
// credential in it, and otherwise names the form found.
func (ix leakIndex) assertContains(t testing.TB, text, want string, msg ...any) bool {
	t.Helper()
	if what := ix.leak(text); what != "" {
		t.Errorf("the text that should contain %q shows the %s %v", want, what, msg)
		return false
	}
	return assert.Contains(t, text, want, msg...)
}

// assertEqual is assertContains for the whole text.
func (ix leakIndex) assertEqual(t testing.TB, want, text string, msg ...any) bool {
	t.Helper()
	if what := ix.leak(text); what != "" {
		t.Errorf("the text that should be %q shows the %s %v", want, what, msg)
		return false
	}
	return assert.Equal(t, want, text, msg...)
}

var (
	percentEscape = regexp.MustCompile(`%[0-9a-fA-F]{2}`)
	htmlTag       = regexp.MustCompile(`<[^<>]*>`) // as a page shows text: without its tags
)

func readerViews(text string) []string {
	seen := map[string]bool{}
	var views []string
	queue := []string{text}
	for len(queue) > 0 && len(views) < 64 {
		v := queue[0]
		queue = queue[1:]
		if seen[v] {
			continue
		}
		seen[v] = true
		views = append(views, readerFold(v))
		queue = append(queue, html.UnescapeString(v), htmlTag.ReplaceAllString(v, ""), percentEscape.ReplaceAllStringFunc(v, func(e string) string {
			b, _ := hex.DecodeString(e[1:])
			return string(b)
		}))
		var s string
		if json.Unmarshal([]byte(`"`+v+`"`), &s) == nil {
			queue = append(queue, s)
		}
		if s, err := strconv.Unquote(`"` + v + `"`); err == nil {
			queue = append(queue, s)
		}
	}
	return views
}

// readerFold is what a reader's eye does: fullwidth letters read as ASCII, invisible characters vanish,
// case does not matter.
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

func alnumOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// The oracle itself must find each form the probe used, or the tests built on it prove nothing.
func TestLeakOracleFindsEachForm(t *testing.T) {
	const s = "s3cr/et+with&odd=chars"
	ix := newLeakIndex(credential{name: "secret", value: s, raw: true})
	var fullwidth, zeroWidth, entities strings.Builder
	for _, r := range s {
		fullwidth.WriteRune(r + 0xfee0)
		zeroWidth.WriteString(string(r) + "\u200b")
		fmt.Fprintf(&entities, "&#x%x;", r)
	}
	for name, text := range map[string]string{
		"as is":          "x " + s + " y",
		"upper-case":     strings.ToUpper(s),
		"truncated":      s[:9],
		"hex":            strings.ToUpper(hex.EncodeToString([]byte(s))),
		"base64 shifted": base64.RawURLEncoding.EncodeToString([]byte("ab" + s)),
		"html":           entities.String(),
		"percent":        strings.ToLower(percentAll(s)),
		"json":           `\u0073\u0033\u0063\u0072/et+with`,
		"fullwidth":      fullwidth.String(),
		"zero-width":     zeroWidth.String(),
		"spaced out":     strings.Join(strings.Split(s, ""), " "),
		"split by tags":  strings.Join(strings.Split(s, ""), "<b></b>"),
	} {
		assert := ix.leak(text)
		if assert == "" {
			t.Errorf("the oracle misses the secret %s", name)
		}
	}
	if what := ix.leak("invalid_client: Client authentication failed"); what != "" {
		t.Errorf("the oracle finds the %s in plain words", what)
	}
}

func percentAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}
