package hostname

import (
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, def   string
		want      string // String(): name:port
		authority string // Authority(): as Host carries it
		err       string
	}{
		{"supplier.test", "443", "supplier.test:443", "supplier.test", ""},
		{"Supplier.TEST:8443", "443", "supplier.test:8443", "supplier.test:8443", ""},
		{"supplier.test.", "80", "supplier.test:80", "supplier.test", ""},
		{"supplier.test:0080", "443", "supplier.test:80", "supplier.test:80", ""},
		{"svc_a.internal", "80", "svc_a.internal:80", "svc_a.internal", ""},
		// The names the probe used: each is what Go's transport would have dialled, never what ToLower made.
		{"suppl\u0130er-a.sec:19201", "80", "xn--supplier-a-s2f.sec:19201", "xn--supplier-a-s2f.sec:19201", ""},
		{"\u0131x.test", "80", "xn--x-eka.test:80", "xn--x-eka.test", ""},
		{"\u212Aey.test", "80", "key.test:80", "key.test", ""},                // Kelvin sign
		{"\u017Fupplier.test", "80", "supplier.test:80", "supplier.test", ""}, // long s
		{"ｓｕｐｐｌｉｅｒ.test", "80", "supplier.test:80", "supplier.test", ""},
		{"supplier\u3002test", "80", "supplier.test:80", "supplier.test", ""},  // ideographic full stop
		{"sup\u200Bplier.test", "80", "supplier.test:80", "supplier.test", ""}, // zero-width space is mapped away
		{"sup\u200Dplier.test", "80", "", "", "IDNA"},                          // zero-width joiner is not allowed here
		{"m\u00FCnchen.example", "80", "xn--mnchen-3ya.example:80", "xn--mnchen-3ya.example", ""},
		{"127.0.0.1:8080", "80", "127.0.0.1:8080", "127.0.0.1:8080", ""},
		{"127.0.0.1.", "80", "127.0.0.1:80", "127.0.0.1", ""},
		{"１２７.０.０.１", "80", "127.0.0.1:80", "127.0.0.1", ""},
		{"[::ffff:127.0.0.1]:80", "80", "127.0.0.1:80", "127.0.0.1:80", ""},
		{"[2001:DB8:0::1]", "443", "[2001:db8::1]:443", "[2001:db8::1]", ""},
		{"[2001:db8::1]:8443", "443", "[2001:db8::1]:8443", "[2001:db8::1]:8443", ""},
		{"::1", "443", "[::1]:443", "[::1]", ""},
		{"[fe80::1%25eth0]:80", "80", "", "", "zone"},
		{"[fe80::1%eth0]:80", "80", "", "", "zone"},
		{"127.1", "80", "", "", "last label is a number"},
		{"0x7f.1", "80", "", "", "last label is a number"},
		{"2130706433", "80", "", "", "last label is a number"},
		{"a..b", "80", "", "", "label is empty"},
		{".a", "80", "", "", "label is empty"},
		{"", "80", "", "", "empty host"},
		{":80", "80", "", "", "empty host"},
		{"a b.test", "80", "", "", "only letters"},
		{"a%2eb.test", "80", "", "", "only letters"},
		{"a.test:99999", "80", "", "", "not a port"},
		{"a.test:-1", "80", "", "", "not a port"},
		{"a.test:0", "80", "", "", "not a port"},
		{"a.test:", "80", "a.test:80", "a.test", ""}, // an empty port is the default (RFC 3986)
		{"[a.test]:80", "80", "", "", "brackets"},
		{"[::1]x", "80", "", "", "after ']'"},
		{"[::1", "80", "", "", "without ']'"},
		{strings.Repeat("a", 64) + ".test", "80", "", "", "longer than 63"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			h, err := Parse(tt.in, tt.def)
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, h.String())
			assert.Equal(t, tt.authority, h.Authority())
		})
	}
}

// The properties every other package relies on, for any input: what Parse accepts is ASCII, reads back
// as itself, and is left alone by the conversion Go's transport applies before it dials and writes Host.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"supplier.test", "suppl\u0130er-a.sec:19201", "\u0131.test", "\u212A.test", "\u017F.test",
		"ｓｕｐｐｌｉｅｒ.test", "sup\u200Dplier.test", "sup\u200Cplier.test", "a%41.test", "supplier.test.", "[fe80::1%25eth0]",
		"SUPPLIER.test", "[::ffff:127.0.0.1]:80", "127.1", "0x7f.0.0.1", "１２７.０.０.１", "a_b.test:08443", "xn--mnchen-3ya.de",
		"\u00ADsupplier.test", "supplier\u3002test", "[::1]:443", "::1", "a:b:c", "[]", "[::1]:", "..", "a.test:65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, err := Parse(in, "443")
		if err != nil {
			return
		}
		for i := 0; i < len(h.Name()); i++ {
			if c := h.Name()[i]; c >= 0x80 || c >= 'A' && c <= 'Z' {
				t.Fatalf("%q gave a name that is not lower-case ASCII: %q", in, h.Name())
			}
		}
		again, err := Parse(h.String(), "1")
		if err != nil || again.String() != h.String() || again.IsAddr() != h.IsAddr() {
			t.Fatalf("%q gave %q, which reads back as %q (%v)", in, h.String(), again.String(), err)
		}
		if a, err := Parse(h.Authority(), h.Port()); err != nil || !a.Equal(h) || a.Authority() != h.Authority() {
			t.Fatalf("%q: Host %q reads back as %q (%v)", in, h.Authority(), a.String(), err)
		}
		// net/http dials and writes an ASCII host as it is (it converts only non-ASCII ones), so the form
		// above is what leaves the proxy.
		if _, _, err := net.SplitHostPort(h.String()); err != nil {
			t.Fatalf("%q: %q does not split: %v", in, h.String(), err)
		}
	})
}

// The request path parses every request's host: a canonical name costs no allocation.
func TestCanonicalHostParseAllocs(t *testing.T) {
	for _, in := range []string{"supplier.test", "api.supplier.test:8443", "127.0.0.1:8080", "[2001:db8::1]:443"} {
		assert.Zero(t, testkit.AllocsPerRun(t, 100, func() {
			h, _ := Parse(in, "443")
			_ = h.Authority()
		}), in)
	}
}
