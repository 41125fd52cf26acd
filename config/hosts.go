package config

import (
	"errors"
	"net"
	"net/netip"
	"strings"
)

// HostPattern is one entry of a route's hosts: an exact name or a "*." wildcard, with an optional port.
type HostPattern struct {
	Wildcard bool   // "*.example.com": any subdomain, never example.com itself
	Name     string // lower case, without "*." and without brackets for IPv6
	Port     string // empty: every port
}

func (h HostPattern) String() string {
	name := h.Name
	if strings.Contains(name, ":") {
		name = "[" + name + "]"
	}
	if h.Wildcard {
		name = "*." + name
	}
	if h.Port != "" {
		name += ":" + h.Port
	}
	return name
}

// ParseHostPattern reads "api.example.com", "*.example.com", "api.example.com:8443" or "[::1]:8080".
func ParseHostPattern(s string) (HostPattern, error) {
	var h HostPattern
	raw := strings.ToLower(strings.TrimSpace(s))
	if raw == "" {
		return h, errors.New("empty host")
	}
	if strings.Contains(raw, "/") {
		return h, errors.New("a host is a name with an optional port, without scheme or path")
	}
	name := raw
	if strings.HasPrefix(raw, "[") && strings.HasSuffix(raw, "]") {
		name = raw[1 : len(raw)-1]
	} else if strings.HasPrefix(raw, "[") || strings.Count(raw, ":") == 1 {
		var err error
		if name, h.Port, err = net.SplitHostPort(raw); err != nil || !validPort(h.Port) || h.Port == "0" {
			return h, errors.New("bad host:port")
		}
	}
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		h.Wildcard, name = true, rest
	}
	name = canonicalName(name)
	if name == "" || strings.Contains(name, "*") {
		return h, errors.New(`a wildcard may only be a leading "*."`)
	}
	if net.ParseIP(name) == nil {
		if strings.ContainsFunc(name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_')
		}) {
			return h, errors.New("not a host name")
		}
		// "..", ".a" or "a..b": a request host can never be written so, and "." would print back as "".
		if strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
			return h, errors.New("not a host name: a label is empty")
		}
	}
	h.Name = name
	return h, nil
}

// table finds the route of a host. The most specific pattern wins: exact name with port, exact name,
// then the longest wildcard suffix (with port before without).
type table struct {
	exact map[hostKey]*Route // port "" matches every port
	wild  map[hostKey]*Route // by suffix
}

// hostKey is a host name and a port, kept apart so that no IPv6 address can pass for another with a port.
type hostKey struct{ name, port string }

func newTable(routes []*Route) *table {
	t := &table{exact: map[hostKey]*Route{}, wild: map[hostKey]*Route{}}
	for _, r := range routes {
		for _, h := range r.Hosts {
			key := hostKey{h.Name, h.Port}
			if h.Wildcard {
				t.wild[key] = r
			} else {
				t.exact[key] = r
			}
		}
	}
	return t
}

// match returns the route for a request's URL host ("name" or "name:port"), or nil. defaultPort applies
// when host has no port (80 for http, 443 for https and CONNECT).
func (t *table) match(host, defaultPort string) *Route {
	name, port := splitHostPort(host, defaultPort)
	name, isAddr := canonicalHost(name)
	if r := t.exact[hostKey{name, port}]; r != nil {
		return r
	}
	if r := t.exact[hostKey{name, ""}]; r != nil {
		return r
	}
	if isAddr {
		return nil // an address has no parent domain
	}
	for suffix := name; ; {
		i := strings.IndexByte(suffix, '.')
		if i < 0 {
			return nil
		}
		suffix = suffix[i+1:]
		if r := t.wild[hostKey{suffix, port}]; r != nil {
			return r
		}
		if r := t.wild[hostKey{suffix, ""}]; r != nil {
			return r
		}
	}
}

// canonicalName is a host name in lower case without a trailing dot; an IP address in its canonical form,
// so that 2001:DB8:0::1 and 2001:db8::1 are one host.
func canonicalName(name string) string {
	name, _ = canonicalHost(name)
	return name
}

// canonicalHost is canonicalName, and whether the name is an IP address.
func canonicalHost(name string) (string, bool) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	a, err := netip.ParseAddr(name)
	if err != nil {
		return name, false
	}
	if a.Zone() != "" {
		return name, true
	}
	var buf [64]byte
	canonical := a.Unmap().AppendTo(buf[:0])
	if string(canonical) == name {
		return name, true // most addresses are written canonically: no copy on the request path
	}
	return string(canonical), true
}

// splitHostPort splits "name:port", "[v6]:port", "name" or "v6" without failing.
func splitHostPort(host, defaultPort string) (name, port string) {
	if h, p, err := net.SplitHostPort(host); err == nil {
		if p == "" {
			p = defaultPort
		}
		return h, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), defaultPort
}

// DefaultPort is the port of a URL scheme when the URL names none.
func DefaultPort(scheme string) string {
	if scheme == "https" || scheme == "wss" {
		return "443"
	}
	return "80"
}

// SameHost reports whether a request's URL host (with reqDefaultPort when it has no port) is the
// CONNECT target connectHost (host:port), case-insensitively and ignoring a trailing dot.
func SameHost(reqHost, reqDefaultPort, connectHost string) bool {
	n1, p1 := splitHostPort(reqHost, reqDefaultPort)
	n2, p2 := splitHostPort(connectHost, "443")
	return p1 == p2 && strings.EqualFold(strings.TrimSuffix(n1, "."), strings.TrimSuffix(n2, "."))
}
