package tokensource

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"net/url"
	"regexp"
	"strings"
)

// minRun is how many characters of a credential in a row are never shown, in any form.
const minRun = 8

// minShort is the length from which a credential shorter than minRun is removed whole; shorter values
// would garble ordinary words.
const minShort = 4

// marker replaces what was removed. It is shorter than anything removed, so removing until nothing is
// found always ends.
const marker = "***"

// secret is a value never to show. With raw set its own characters count; without, only its encodings
// (the request body, whose fields that are credentials are secrets of their own).
type secret struct {
	value string
	raw   bool
}

// filter finds a route's credentials in normalised text: every run of minRun characters of any form of
// any credential (as normalised text would show it, in hex, and in base64 of either alphabet at each of
// the three alignments), case-insensitively, and again with all but letters and digits (and HTML tags)
// left out, so that spaces, dots or tags put between a credential's characters do not hide it. A nil
// filter knows no credentials.
type filter struct {
	runs  map[uint64]struct{} // minRun characters of a form, lower-cased
	skel  map[uint64]struct{} // minRun letters and digits of a form, lower-cased
	short []string            // whole raw forms of minShort to minRun-1 characters, lower-cased
}

func newFilter(secrets []secret) *filter {
	size := 0
	for _, s := range secrets {
		size += 12 * len(s.value) // hex, and two alphabets at three alignments of base64
	}
	f := &filter{runs: make(map[uint64]struct{}, size), skel: make(map[uint64]struct{}, size)}
	for _, s := range secrets {
		v := s.value
		if v == "" {
			continue
		}
		if s.raw {
			// As a reader decodes it, and as written (a secret may itself hold what looks like an escape).
			f.add(normalizeSecret(v), true)
			f.add(fold(v, false), true)
		}
		f.add(hex.EncodeToString([]byte(v)), false)
		// An echo may start anywhere: base64 of v[k:] for k < 3 holds every alignment's groups.
		for k := 0; k < 3 && k < len(v); k++ {
			f.add(base64.StdEncoding.EncodeToString([]byte(v[k:])), false)
			f.add(base64.URLEncoding.EncodeToString([]byte(v[k:])), false)
		}
	}
	return f
}

func (f *filter) add(form string, raw bool) {
	lower := strings.ToLower(form)
	if len(lower) >= minRun {
		for i := 0; i+minRun <= len(lower); i++ {
			f.runs[pack(lower[i:])] = struct{}{}
		}
	} else if raw && len(lower) >= minShort {
		f.short = append(f.short, lower)
	}
	for _, page := range []bool{false, true} {
		skel, _ := skeleton(lower, page)
		for i := 0; i+minRun <= len(skel); i++ {
			f.skel[packBytes(skel[i:])] = struct{}{}
		}
	}
}

// skeleton returns the letters and digits of s, and where each is in s; with page, those outside HTML
// tags only, as a page shows s (so tags cannot split a credential for a reader of one). Text is read both
// ways: "s<3cr>et" is a credential in plain text, "s<b></b>3cret" in a page.
func skeleton(s string, page bool) (skel []byte, at []int) {
	skel, at = make([]byte, 0, len(s)), make([]int, 0, len(s))
	for i := 0; i < len(s); i++ {
		if end := tagEnd(s, i); page && end > i {
			i = end
			continue
		}
		if isAlnum(s[i]) {
			skel, at = append(skel, s[i]), append(at, i)
		}
	}
	return skel, at
}

// tagEnd returns where the HTML tag or comment starting at s[i] ends ('>'), or i when none starts there.
func tagEnd(s string, i int) int {
	if s[i] != '<' || i+1 >= len(s) || !(isAlnum(s[i+1]) || strings.IndexByte("/!?", s[i+1]) >= 0) {
		return i
	}
	for j := i + 1; j < len(s) && j < i+maxTag; j++ {
		switch s[j] {
		case '>':
			return j
		case '<':
			return i
		}
	}
	return i
}

// maxTag bounds how long an HTML tag can be.
const maxTag = 256

// pack is the first minRun bytes of s as one number.
func pack(s string) uint64 {
	var b [minRun]byte
	copy(b[:], s)
	return binary.LittleEndian.Uint64(b[:])
}

func packBytes(b []byte) uint64 { return binary.LittleEndian.Uint64(b[:minRun]) }

// find marks the bytes of normalised text t that belong to a credential; found is false when none do.
func (f *filter) find(t string) (marks []bool, found bool) {
	if f == nil || t == "" {
		return nil, false
	}
	lower := strings.ToLower(t)
	marks = make([]bool, len(t))
	mark := func(from, to int) {
		for i := from; i < to; i++ {
			marks[i] = true
		}
		found = true
	}
	for i := 0; i+minRun <= len(lower); i++ {
		if _, ok := f.runs[pack(lower[i:])]; ok {
			mark(i, i+minRun)
		}
	}
	for _, page := range []bool{false, true} {
		skel, at := skeleton(lower, page)
		for i := 0; i+minRun <= len(skel); i++ {
			if _, ok := f.skel[packBytes(skel[i:])]; ok {
				mark(at[i], at[i+minRun-1]+1) // with what stood between them
			}
		}
	}
	for _, s := range f.short {
		for from := 0; ; {
			i := strings.Index(lower[from:], s)
			if i < 0 {
				break
			}
			mark(from+i, from+i+len(s))
			from += i + 1
		}
	}
	return marks, found
}

// replace puts marker in place of each run of marked bytes.
func replace(t string, marks []bool) string {
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		if !marks[i] {
			b.WriteByte(t[i])
			continue
		}
		b.WriteString(marker)
		for i+1 < len(t) && marks[i+1] {
			i++
		}
	}
	return b.String()
}

// scrub removes every credential from normalised text t, again until none is found: a removal joins the
// text on either side, which could spell one anew.
func (f *filter) scrub(t string) string {
	for {
		marks, found := f.find(t)
		if !found {
			return t
		}
		t = replace(t, marks)
	}
}

// clean reports whether s shows no credential, however a reader decodes it.
func (f *filter) clean(s string) bool {
	n, ok := normalize(s)
	if !ok {
		return false
	}
	_, found := f.find(n)
	return !found
}

// guard returns text as it is when it shows no credential, or else normalised with the credentials
// removed. It is the last step of every message an *Error gives: its own words joined to what the
// endpoint wrote could spell what neither does alone.
func (f *filter) guard(text string) string {
	if f.clean(text) {
		return text
	}
	n, ok := normalize(text)
	if !ok {
		// Escapes nested deeper than normalize undoes: none is left for a reader to decode.
		n = fold(strings.Map(func(r rune) rune {
			if r == '%' || r == '&' || r == '\\' {
				return '?'
			}
			return r
		}, text), true)
	}
	return f.scrub(n)
}

// credentialsOf lists what a route must never see echoed: its secret as configured and as sent (with the
// Basic credentials made of it), the values of its token request headers, of its parameters whose names
// say they are secret, and the values the caller marks sensitive.
func credentialsOf(c Config) []secret {
	var out []secret
	add := func(raw bool, vs ...string) {
		for _, v := range vs {
			out = append(out, secret{v, raw})
		}
	}
	if c.ClientSecret != "" {
		id, qid, qsecret := c.ClientID, url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret)
		add(true, c.ClientSecret, qsecret)
		// The client id is no secret: of "id:secret" only what holds a character of the secret counts raw.
		add(true, tail(id, minRun-2)+":"+c.ClientSecret, tail(qid, minRun-2)+":"+qsecret)
		add(false, id+":"+c.ClientSecret, qid+":"+qsecret)
	}
	for _, v := range c.TokenHeaders {
		add(true, v)
	}
	for k, v := range c.Params {
		if sensitiveName.MatchString(k) {
			add(true, v)
		}
	}
	add(true, c.Sensitive...)
	return out
}

// sensitiveName is a parameter name whose value is taken for a credential.
var sensitiveName = regexp.MustCompile(`(?i)token|secret|passw|assertion|^code$|signature|key$|^api[_-]?key`)

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
