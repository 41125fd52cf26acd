// Package hostname owns the one canonical form of a host: computed once where a request is parsed and
// where routes.yaml is read, it is what the route table matches, what is dialled, what goes in SNI and in
// Host/:authority, what is logged and counted. A Host can only be made here, so whatever holds one holds
// that form.
package hostname

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// Host is a canonical host name (or IP address) and port.
type Host struct {
	name      string // lower-case ASCII without a trailing dot, or an IP address in its canonical form
	port      string // decimal without leading zeros; the scheme's default when none was written
	authority string // name, bracketed when IPv6, with ":port" when the port was written
	portGiven bool   // the request wrote the port: Host/:authority keeps it
	addr      bool   // name is an IP address
}

// Name is the canonical host name or IP address, without brackets.
func (h Host) Name() string { return h.name }

// Port is the port, the default one when none was written.
func (h Host) Port() string { return h.port }

// IsAddr reports whether the host is an IP address rather than a name.
func (h Host) IsAddr() bool { return h.addr }

// IsZero reports whether h was never parsed.
func (h Host) IsZero() bool { return h.name == "" }

// String is host:port, with the port always present: the address a tunnel dials.
func (h Host) String() string {
	if h.portGiven {
		return h.authority
	}
	return net.JoinHostPort(h.name, h.port)
}

// Authority is the host as it goes in a URL, Host or :authority, and in logs: the canonical name, with
// the port only when the request wrote one (the transport then dials the scheme's default port).
func (h Host) Authority() string { return h.authority }

// WithPort is h with port in place of a default one; a port the request wrote stays.
func (h Host) WithPort(port string) Host {
	if !h.portGiven {
		h.port = port
	}
	return h
}

// setAuthority writes the authority, reusing the request's own text when it is already canonical (the
// usual case: no copy on the request path).
func (h *Host) setAuthority(written string) {
	bracket := h.addr && strings.Contains(h.name, ":")
	switch {
	case !bracket && !h.portGiven && written == h.name:
		h.authority = written
	case !bracket && h.portGiven && len(written) == len(h.name)+1+len(h.port) && written[:len(h.name)] == h.name &&
		written[len(h.name)] == ':' && written[len(h.name)+1:] == h.port:
		h.authority = written
	case bracket && h.portGiven && len(written) == len(h.name)+3+len(h.port) && written[0] == '[' &&
		written[1:1+len(h.name)] == h.name && written[1+len(h.name):3+len(h.name)] == "]:" && written[3+len(h.name):] == h.port:
		h.authority = written
	case h.portGiven:
		h.authority = net.JoinHostPort(h.name, h.port)
	case bracket:
		h.authority = "[" + h.name + "]"
	default:
		h.authority = h.name
	}
}

// Equal reports whether two hosts name the same name and port (whether the port was written or not).
func (h Host) Equal(o Host) bool { return h.name == o.name && h.port == o.port }

// Parse reads "name", "name:port", "[v6]" or "[v6]:port" as a request carries it (a URL's host, a
// CONNECT target, Host or :authority), with defaultPort when no port is written. It refuses what has no
// single meaning: a name that does not convert to ASCII with IDNA's lookup profile, an empty label, a
// port that is not a number, an IPv6 zone.
func Parse(hostport, defaultPort string) (Host, error) {
	var h Host
	name, port, err := split(hostport)
	if err != nil {
		return h, err
	}
	if port == "" {
		port = defaultPort
	} else {
		h.portGiven = true
	}
	if h.port, err = canonicalPort(port); err != nil {
		return Host{}, err
	}
	if h.name, h.addr, err = Name(name); err != nil {
		return Host{}, err
	}
	h.setAuthority(hostport)
	return h, nil
}

// Name is the canonical form of a host name or IP literal without port or brackets, and whether it is an
// IP address. An ASCII name is lower-cased (underscores are kept: some internal hosts have them); a name
// with other letters is converted with IDNA's lookup profile, as Go's HTTP transport converts the names it
// dials; a trailing dot is dropped; an address is written canonically (IPv4-mapped IPv6 as IPv4).
func Name(name string) (canonical string, isAddr bool, err error) {
	if name == "" {
		return "", false, errors.New("empty host")
	}
	if a, ok, err := address(name); ok {
		return a, true, err
	}
	if !isASCII(name) {
		converted, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return "", false, errors.New("not a host name: it does not convert to ASCII (IDNA)")
		}
		name = converted
	}
	name = lowerASCII(strings.TrimSuffix(name, "."))
	// A name that IDNA or the dot made an address ("１２７.０.０.１", "127.0.0.1.") is that address.
	if a, ok, err := address(name); ok {
		return a, true, err
	}
	if err := checkName(name); err != nil {
		return "", false, err
	}
	return name, false, nil
}

// address is the canonical form of an IP address, and whether s is one.
func address(s string) (string, bool, error) {
	if !strings.Contains(s, ":") && strings.Trim(s, "0123456789.") != "" {
		return "", false, nil // a name: no parse, no error value made on the request path
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", false, nil
	}
	if a.Zone() != "" {
		return "", true, errors.New("an IPv6 zone names an interface of the proxy's own machine, not a host")
	}
	var buf [64]byte
	if canonical := a.Unmap().AppendTo(buf[:0]); string(canonical) != s {
		return string(canonical), true, nil
	}
	return s, true, nil // most addresses are written canonically: no copy on the request path
}

// checkName accepts letters, digits, '-', '_' and non-empty labels of at most 63 bytes. A name whose last
// label is a number is not a name but an address in a form the resolver may read its own way ("127.1",
// "0x7f.1"): refused.
func checkName(name string) error {
	if name == "" || len(name) > 253 {
		return errors.New("not a host name: empty or longer than 253 bytes")
	}
	label := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.':
			if label == 0 {
				return errors.New("not a host name: a label is empty")
			}
			label = 0
			continue
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return errors.New("not a host name: only letters, digits, '-', '_' and '.' may appear")
		}
		if label++; label > 63 {
			return errors.New("not a host name: a label is longer than 63 bytes")
		}
	}
	last := name[strings.LastIndexByte(name, '.')+1:]
	if numeric(last) {
		return errors.New("not a host name: its last label is a number, so it reads as an address, and it is not one")
	}
	return nil
}

// numeric reports whether a label reads as a number in a numbers-and-dots address (decimal, octal, 0x hex).
func numeric(label string) bool {
	if rest, ok := strings.CutPrefix(label, "0x"); ok {
		label = rest
		return strings.Trim(label, "0123456789abcdef") == ""
	}
	return strings.Trim(label, "0123456789") == ""
}

// split separates host and port without losing anything: "[v6]:p", "[v6]", "name:p", "name", or a bare
// IPv6 address.
func split(hostport string) (host, port string, err error) {
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return "", "", errors.New("not a host: '[' without ']'")
		}
		host, rest := hostport[1:end], hostport[end+1:]
		if _, err := netip.ParseAddr(host); err != nil || !strings.Contains(host, ":") {
			return "", "", errors.New("not a host: brackets hold only an IPv6 address")
		}
		switch {
		case rest == "":
			return host, "", nil
		case rest[0] == ':':
			return host, rest[1:], nil
		}
		return "", "", errors.New("not a host: text after ']'")
	}
	switch strings.Count(hostport, ":") {
	case 0:
		return hostport, "", nil
	case 1:
		i := strings.IndexByte(hostport, ':')
		return hostport[:i], hostport[i+1:], nil
	}
	return hostport, "", nil // a bare IPv6 address, checked by Name
}

// canonicalPort is a port in decimal without leading zeros; "" stays "" (no default to apply).
func canonicalPort(p string) (string, error) {
	if p == "" {
		return "", errors.New("no port")
	}
	if len(p) > 5 || strings.Trim(p, "0123456789") != "" {
		return "", errors.New("not a port: want a number from 1 to 65535")
	}
	n, _ := strconv.Atoi(p)
	if n < 1 || n > 65535 {
		return "", errors.New("not a port: want a number from 1 to 65535")
	}
	if p[0] != '0' {
		return p, nil // the usual case: no copy
	}
	return strconv.Itoa(n), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// lowerASCII lower-cases ASCII letters only (strings.ToLower would also map non-ASCII letters, which
// must never happen after IDNA), without a copy when there is nothing to change.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// Port is a port as routes.yaml or a request writes it, in canonical decimal.
func Port(p string) (string, error) { return canonicalPort(p) }
