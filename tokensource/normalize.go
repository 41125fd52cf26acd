package tokensource

import (
	"html"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text a token endpoint wrote is normalised before it is matched against credentials, and what is shown is
// built from the normalised text: printable ASCII in which no HTML entity, percent-escape or backslash
// escape is left to decode, so no reader can turn what is shown into something that was not checked.

// maxScanned bounds how much of one endpoint text is looked at; far less is ever shown.
const maxScanned = 4096

// maxDecodes bounds the rounds of decoding; text still changing after them is withheld.
const maxDecodes = 8

// foreign stands, between folding and the word rule, for a letter or digit outside ASCII that looks like
// no ASCII character.
const foreign = 0x01

// normalize returns endpoint text s decoded until nothing changes (HTML entities, percent-escapes, JSON
// and Go backslash escapes, Unicode folded to ASCII), or false when it keeps changing, so that it is
// withheld.
func normalize(s string) (string, bool) {
	if len(s) > maxScanned {
		s = s[:maxScanned]
	}
	return decodeAll(s, true)
}

// normalizeSecret is normalize for a credential: a letter with no ASCII look-alike becomes "?" alone, not
// its whole word, so that the credential's other characters are still looked for.
func normalizeSecret(s string) string {
	if n, ok := decodeAll(s, false); ok {
		return n
	}
	return fold(s, false)
}

func decodeAll(s string, words bool) (string, bool) {
	for range maxDecodes {
		d := fold(decodeOnce(s), words)
		if d == s {
			return s, true
		}
		s = d
	}
	return "", false
}

// decodeOnce undoes one layer of each escaping an endpoint could hide a credential behind.
func decodeOnce(s string) string {
	if strings.IndexByte(s, '&') >= 0 {
		s = html.UnescapeString(s)
	}
	if strings.IndexByte(s, '%') >= 0 {
		s = percentDecode(s)
	}
	if strings.IndexByte(s, '\\') >= 0 {
		s = backslashDecode(s)
	}
	return s
}

// percentDecode decodes every well-formed %XX and leaves anything else as it is (url.PathUnescape gives
// up on the first malformed escape, which would leave the rest undecoded).
func percentDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// backslashDecode decodes the escapes of JSON and Go strings (\uXXXX with surrogate pairs, \UXXXXXXXX,
// \xXX, \n and the like, \\ \" \/ \'), leaving unknown ones as they are.
func backslashDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		c := s[i+1]
		switch {
		case c == 'u' && i+5 < len(s) && allHex(s[i+2:i+6]):
			r := rune(hexValue(s[i+2 : i+6]))
			i += 5
			if utf16IsHigh(r) && i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' && allHex(s[i+3:i+7]) {
				if lo := rune(hexValue(s[i+3 : i+7])); utf16IsLow(lo) {
					r = (r-0xD800)<<10 | (lo - 0xDC00) + 0x10000
					i += 6
				}
			}
			b.WriteRune(r) // a lone surrogate is written as U+FFFD
		case c == 'U' && i+9 < len(s) && allHex(s[i+2:i+10]):
			b.WriteRune(rune(hexValue(s[i+2 : i+10])))
			i += 9
		case c == 'x' && i+3 < len(s) && allHex(s[i+2:i+4]):
			b.WriteByte(byte(hexValue(s[i+2 : i+4])))
			i += 3
		case strings.IndexByte(`abfnrtv`, c) >= 0:
			b.WriteByte(' ')
			i++
		case strings.IndexByte(`\"/'`, c) >= 0:
			b.WriteByte(c)
			i++
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// fold maps s to printable ASCII: look-alikes (fullwidth forms, Cyrillic and Greek letters that look
// Latin) to the ASCII they look like, invisible characters (zero-width, joiners, combining marks, soft
// hyphens, fillers) to nothing, so they cannot split a credential, any space or control character to one
// space, and any other letter or digit to "?"; with words, a word holding one becomes "?" as a whole, so
// that it cannot show a credential's characters between ones that are not checked.
func fold(s string, words bool) string {
	mapped := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		mapped = append(mapped, foldRune(r)...)
	}
	var b strings.Builder
	space := true // at the start, and after a space: a space is dropped
	for i := 0; i < len(mapped); {
		c := mapped[i]
		if !isWordByte(c) {
			if c == ' ' {
				if !space {
					b.WriteByte(' ')
				}
				space = true
			} else {
				b.WriteByte(c)
				space = false
			}
			i++
			continue
		}
		j, hidden := i, false
		for j < len(mapped) && isWordByte(mapped[j]) {
			hidden = hidden || mapped[j] == foreign
			j++
		}
		switch {
		case hidden && words:
			b.WriteByte('?')
		case hidden:
			b.WriteString(strings.ReplaceAll(string(mapped[i:j]), string(rune(foreign)), "?"))
		default:
			b.Write(mapped[i:j])
		}
		space, i = false, j
	}
	return strings.TrimRight(b.String(), " ")
}

func isWordByte(c byte) bool { return c == foreign || isAlnum(c) }

// foldRune is one rune's part of fold: nothing, one ASCII byte, or foreign.
func foldRune(r rune) []byte {
	switch {
	case r == utf8.RuneError:
		return []byte{'?'}
	case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0:
		return []byte{' '}
	case r < 0x80:
		return []byte{byte(r)}
	case r >= 0xff01 && r <= 0xff5e: // fullwidth ASCII
		return foldRune(r - 0xfee0)
	case r == 0x3000:
		return []byte{' '}
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf) || isFiller(r):
		return nil
	case unicode.IsSpace(r) || unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp):
		return []byte{' '}
	}
	if c, ok := lookAlikes[r]; ok {
		return []byte{c}
	}
	switch {
	case unicode.IsLetter(r) || unicode.IsNumber(r):
		return []byte{foreign}
	case r >= 0x2018 && r <= 0x201b:
		return []byte{'\''}
	case r >= 0x201c && r <= 0x201f:
		return []byte{'"'}
	case r >= 0x2010 && r <= 0x2015 || r == 0x2212:
		return []byte{'-'}
	}
	return []byte{'?'}
}

// isFiller reports the letters that show as nothing (Hangul fillers), which count as invisible.
func isFiller(r rune) bool {
	return r == 0x115f || r == 0x1160 || r == 0x3164 || r == 0xffa0 || r == 0x2800
}

// lookAlikes maps letters of other scripts to the ASCII letter they are drawn like (a part of Unicode
// TR39's confusables: Cyrillic, Greek, Armenian, Latin extensions, Roman numerals, letterlike symbols).
var lookAlikes = map[rune]byte{
	'а': 'a', 'в': 'B', 'е': 'e', 'к': 'k', 'о': 'o', 'р': 'p', 'с': 'c', 'у': 'y', 'х': 'x', 'ѕ': 's',
	'і': 'i', 'ј': 'j', 'һ': 'h', 'ԁ': 'd', 'ԛ': 'q', 'ԝ': 'w', 'ӏ': 'l', 'ь': 'b', 'г': 'r', 'п': 'n',
	'А': 'A', 'В': 'B', 'Е': 'E', 'К': 'K', 'М': 'M', 'Н': 'H', 'О': 'O', 'Р': 'P', 'С': 'C', 'Т': 'T',
	'Х': 'X', 'У': 'Y', 'Ѕ': 'S', 'І': 'I', 'Ј': 'J', 'Ԛ': 'Q', 'Ԝ': 'W', 'Ӏ': 'I', 'З': '3', 'Ь': 'b',
	'α': 'a', 'ο': 'o', 'ρ': 'p', 'ν': 'v', 'υ': 'u', 'ι': 'i', 'κ': 'k', 'χ': 'x', 'ϲ': 'c', 'ϳ': 'j',
	'γ': 'y', 'ω': 'w', 'τ': 't', 'η': 'n', 'ε': 'e', 'ς': 's',
	'Α': 'A', 'Β': 'B', 'Ε': 'E', 'Ζ': 'Z', 'Η': 'H', 'Ι': 'I', 'Κ': 'K', 'Μ': 'M', 'Ν': 'N', 'Ο': 'O',
	'Ρ': 'P', 'Τ': 'T', 'Υ': 'Y', 'Χ': 'X', 'Ϲ': 'C',
	'օ': 'o', 'ս': 'u', 'ց': 'g', 'հ': 'h', 'ո': 'n', 'ք': 'p', 'Տ': 'S', 'Օ': 'O',
	'ı': 'i', 'ȷ': 'j', 'ɑ': 'a', 'ɡ': 'g', 'ɩ': 'i', 'ʋ': 'u', 'ℓ': 'l', 'ℯ': 'e', 'ℊ': 'g', 'ℴ': 'o',
	'Ⅰ': 'I', 'Ⅴ': 'V', 'Ⅹ': 'X', 'Ⅼ': 'L', 'Ⅽ': 'C', 'Ⅾ': 'D', 'Ⅿ': 'M',
	'ⅰ': 'i', 'ⅴ': 'v', 'ⅹ': 'x', 'ⅼ': 'l', 'ⅽ': 'c', 'ⅾ': 'd', 'ⅿ': 'm',
	'ｰ': '-', '‚': ',', '‹': '<', '›': '>', '⁄': '/', '∕': '/', '⧸': '/',
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

func hexValue(s string) uint32 {
	var v uint32
	for i := 0; i < len(s); i++ {
		v = v<<4 | uint32(unhex(s[i]))
	}
	return v
}

func utf16IsHigh(r rune) bool { return r >= 0xd800 && r < 0xdc00 }
func utf16IsLow(r rune) bool  { return r >= 0xdc00 && r < 0xe000 }
