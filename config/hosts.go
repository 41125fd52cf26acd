package config

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/tokenproxy/tokenproxy/internal/hostname"
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

// ParseHostPattern reads "api.example.com", "*.example.com", "api.example.com:8443" or "[::1]:8080". The
// name takes the canonical form requests are matched in (hostname.Name): a route written in Unicode matches
// its punycode.
func ParseHostPattern(s string) (HostPattern, error) {
	var h HostPattern
	raw := strings.TrimSpace(s)
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
		var port string
		var err error
		if name, port, err = net.SplitHostPort(raw); err != nil {
			return h, errors.New("bad host:port")
		}
		if h.Port, err = hostname.Port(port); err != nil {
			return h, fmt.Errorf("bad host:port: %v", err)
		}
	}
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		h.Wildcard, name = true, rest
	}
	if name == "" || strings.Contains(name, "*") {
		return h, errors.New(`a wildcard may only be a leading "*."`)
	}
	name, isAddr, err := hostname.Name(name)
	if err != nil {
		return h, err
	}
	if isAddr && h.Wildcard {
		return h, errors.New(`a wildcard "*." needs a domain name after it, not an address`)
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

// match returns the route of a canonical request host, or nil.
func (t *table) match(host hostname.Host) *Route {
	name, port := host.Name(), host.Port()
	if r := t.exact[hostKey{name, port}]; r != nil {
		return r
	}
	if r := t.exact[hostKey{name, ""}]; r != nil {
		return r
	}
	if host.IsAddr() {
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

// DefaultPort is the port of a URL scheme when the URL names none.
func DefaultPort(scheme string) string {
	if scheme == "https" || scheme == "wss" {
		return "443"
	}
	return "80"
}
