package config

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/hostname"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

func TestRouteTableMatch(t *testing.T) {
	route := func(name string, hosts ...string) *Route {
		r := &Route{Name: name}
		for _, h := range hosts {
			p, err := ParseHostPattern(h)
			require.NoError(t, err)
			r.Hosts = append(r.Hosts, p)
		}
		return r
	}
	table := newTable([]*Route{
		route("any-port", "api.example.com"),
		route("edi", "edi.example.com:8443"),
		route("wild", "*.example.com"),
		route("wild-9000", "*.example.com:9000"),
		route("deeper", "*.eu.example.com"),
		route("exact-over-wild", "special.example.com"),
		route("ipv4", "127.0.0.1:8080"),
		route("ipv6", "[::1]:8080"),
	})
	tests := []struct {
		host, defaultPort, want string
	}{
		{"api.example.com", "80", "any-port"},
		{"api.example.com:8080", "80", "any-port"},
		{"API.Example.COM", "443", "any-port"},
		{"api.example.com.", "443", "any-port"},
		{"edi.example.com:8443", "443", "edi"},
		{"edi.example.com", "443", "wild"}, // edi's pattern names port 8443 only
		{"x.example.com", "80", "wild"},
		{"a.b.example.com", "80", "wild"},
		{"x.example.com:9000", "80", "wild-9000"},
		{"x.eu.example.com", "443", "deeper"},
		{"special.example.com", "443", "exact-over-wild"},
		{"example.com", "443", ""}, // a wildcard never matches the bare domain
		{"notexample.com", "443", ""},
		{"example.com.evil.net", "443", ""},
		{"127.0.0.1:8080", "80", "ipv4"},
		{"127.0.0.1:8081", "80", ""},
		{"[::1]:8080", "80", "ipv6"},
		{"other.net", "80", ""},
		{"[::ffff:127.0.0.1]:8080", "80", "ipv4"}, // the same address, IPv4-mapped
		{"api.example.com:08080", "80", "any-port"},
		{"ＡＰＩ.example.com", "443", "any-port"},            // fullwidth letters are these letters (IDNA)
		{"ſpecial.example.com", "443", "exact-over-wild"}, // long s is s
		{"specİal.example.com", "443", "wild"},            // not special: İ is not i
		{"api.example.com:99999", "80", ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got := matchString(table, tt.host, tt.defaultPort)
			if tt.want == "" {
				assert.Nil(t, got)
				return
			}
			require.NotNil(t, got)
			assert.Equal(t, tt.want, got.Name)
		})
	}
}

func TestParseHostPattern(t *testing.T) {
	tests := []struct {
		in   string
		want HostPattern
		err  string
	}{
		{"API.example.com", HostPattern{Name: "api.example.com"}, ""},
		{"*.example.com:443", HostPattern{Wildcard: true, Name: "example.com", Port: "443"}, ""},
		{"[::1]:8080", HostPattern{Name: "::1", Port: "8080"}, ""},
		{"::1", HostPattern{Name: "::1"}, ""},
		{"", HostPattern{}, "empty host"},
		{"*", HostPattern{}, "wildcard"},
		{"*.", HostPattern{}, "wildcard"},
		{"a b.com", HostPattern{}, "not a host name"},
		{"host:0", HostPattern{}, "bad host:port"},
		{"..", HostPattern{}, "a label is empty"},
		{"a..example.com", HostPattern{}, "a label is empty"},
		{"*..example.com", HostPattern{}, "a label is empty"},
		{"example.com.", HostPattern{Name: "example.com"}, ""},
		{"Bücher.example", HostPattern{Name: "xn--bcher-kva.example"}, ""}, // as requests are matched: punycode
		{"*.bücher.example:8443", HostPattern{Wildcard: true, Name: "xn--bcher-kva.example", Port: "8443"}, ""},
		{"svc_a.internal", HostPattern{Name: "svc_a.internal"}, ""},
		{"[::ffff:10.0.0.1]:80", HostPattern{Name: "10.0.0.1", Port: "80"}, ""},
		{"*.10.0.0.1", HostPattern{}, "not an address"},
		{"sup\u200dplier.example", HostPattern{}, "IDNA"},
		{"127.1", HostPattern{}, "its last label is a number"},
		{"[fe80::1%eth0]:80", HostPattern{}, "zone"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseHostPattern(tt.in)
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			again, err := ParseHostPattern(got.String())
			require.NoError(t, err)
			assert.Equal(t, got, again, "String() reads back")
		})
	}
}

// matchString parses a request host as the proxy does, then matches it: nil when it has no canonical form.
func matchString(t *table, hostport, defaultPort string) *Route {
	h, err := hostname.Parse(hostport, defaultPort)
	if err != nil {
		return nil
	}
	return t.match(h)
}

// Route keys are (host, port) pairs: an IPv6 route with a port never matches another address whose last
// group happens to read like that port.
func TestIPv6RouteKeysAreNotAmbiguous(t *testing.T) {
	p, err := ParseHostPattern("[2001:db8::1]:8443")
	require.NoError(t, err)
	r := &Route{Name: "v6", Hosts: []HostPattern{p}}
	tbl := newTable([]*Route{r})
	assert.Same(t, r, matchString(tbl, "[2001:db8::1]:8443", "443"))
	assert.Same(t, r, matchString(tbl, "[2001:DB8:0::1]:8443", "443"), "the same address written otherwise")
	assert.Nil(t, matchString(tbl, "[2001:db8::1:8443]", "80"), "another host")
	assert.Nil(t, matchString(tbl, "[2001:db8::1:8443]:443", "443"), "another host")
	assert.Nil(t, matchString(tbl, "[2001:db8::1]:443", "443"), "another port")

	any, err := ParseHostPattern("2001:db8::1:8443")
	require.NoError(t, err)
	other := &Route{Name: "other", Hosts: []HostPattern{any}}
	tbl = newTable([]*Route{r, other})
	assert.Same(t, other, matchString(tbl, "[2001:db8::1:8443]", "80"))
	assert.Same(t, r, matchString(tbl, "[2001:db8::1]:8443", "443"))
}

// Matching a parsed host copies nothing.
func TestMatchAllocs(t *testing.T) {
	tab := newTable([]*Route{{Name: "v4", Hosts: mustHosts(t, "127.0.0.1:8080")}, {Name: "v6", Hosts: mustHosts(t, "[2001:db8::1]:443")},
		{Name: "wild", Hosts: mustHosts(t, "*.example.com")}})
	assert.Equal(t, "v4", matchString(tab, "127.0.0.1:8080", "80").Name)
	assert.Equal(t, "v6", matchString(tab, "[2001:DB8:0::1]", "443").Name)
	assert.Equal(t, "v6", matchString(tab, "[2001:db8::1]:443", "80").Name)
	for _, written := range []string{"127.0.0.1:8080", "[2001:db8::1]:443", "a.b.example.com"} {
		h, err := hostname.Parse(written, "443")
		require.NoError(t, err)
		assert.Zero(t, testkit.AllocsPerRun(t, 100, func() { tab.match(h) }), written)
	}
}

func mustHosts(t *testing.T, patterns ...string) []HostPattern {
	var hs []HostPattern
	for _, h := range patterns {
		p, err := ParseHostPattern(h)
		require.NoError(t, err)
		hs = append(hs, p)
	}
	return hs
}

// A gateway lets a route reach loopback only for a host the route names by name: a wildcard names none.
func TestNamesExactly(t *testing.T) {
	cfg, err := Parse("routes.yaml", []byte(`routes:
  - name: r
    hosts: [api.example.com, "edi.example.com:8443", "*.wild.example.com"]
    tokenUrl: https://auth.example.com/token
    clientId: c
    clientSecret: s
`), LoadOptions{})
	require.NoError(t, err)
	for host, want := range map[string]bool{
		"api.example.com:443": true, "api.example.com:80": true, "edi.example.com:8443": true,
		"edi.example.com:443": false, "x.wild.example.com:443": false, "other.example.com:443": false,
	} {
		h, err := hostname.Parse(host, "")
		require.NoError(t, err)
		assert.Equal(t, want, cfg.NamesExactly(h), host)
	}
}

// check sends an upstreamTLS route's http:// URL over https: to port 443 unless the URL names one, which
// the route must match too.
func TestMatchesURLFollowsUpstreamTLS(t *testing.T) {
	url := func(s string) *url.URL {
		u, err := url.Parse(s)
		require.NoError(t, err)
		return u
	}
	port80 := &Route{Name: "r", Hosts: mustHosts(t, "supplier.example:80"), UpstreamTLS: true}
	assert.False(t, port80.MatchesURL(url("http://supplier.example/x")), "sent to 443, which the route does not name")
	assert.True(t, port80.MatchesURL(url("http://supplier.example:80/x")), "sent over https to the port written")
	anyPort := &Route{Name: "r", Hosts: mustHosts(t, "supplier.example"), UpstreamTLS: true}
	assert.True(t, anyPort.MatchesURL(url("http://supplier.example/x")))
}
