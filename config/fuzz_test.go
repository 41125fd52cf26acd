package config

import (
	"strings"
	"testing"
)

// Any routes.yaml gives a configuration or a list of problems, each naming the file: never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte("routes:" + validRoute))
	f.Add([]byte("listen: 0.0.0.0:3128\nclients:\n  - {name: a, cidrs: [10.0.0.0/8], routes: [orders]}\nroutes:" + validRoute))
	f.Add([]byte("admin: ${X}:1\nunmatched: reject\nmitm: {caCert: a, caKey: b}\nroutes: []\n"))
	f.Add([]byte("routes:\n  - hosts: [a.example, b\n    name: x\n"))
	f.Add([]byte("routes:\n  - {name: \"\", hosts: [\"*.*\", \"[::1]:99999\"], tokenUrl: \"http://x\", params: {a: $${b}}}\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data, LoadOptions{SyntaxOnly: true})
		if err != nil {
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("not an *Error: %v", err)
			}
			for _, p := range e.Problems {
				if !strings.HasPrefix(p, "f.yaml") {
					t.Fatalf("a problem that does not name the file: %q", p)
				}
			}
			return
		}
		for _, r := range cfg.Routes {
			if r.Name == "" || len(r.Hosts) == 0 && !strings.Contains(string(data), "${") {
				t.Fatalf("a route without name or hosts was accepted: %+v", r)
			}
			for _, h := range r.Hosts {
				if h.Wildcard || h.Port == "" {
					continue
				}
				if got := cfg.MatchString(h.String(), "1"); got == nil {
					t.Fatalf("host %s of route %s matches no route", h, r.Name)
				}
			}
		}
	})
}

// A host pattern that parses prints back as itself, and a host written as the pattern matches it.
func FuzzHostPattern(f *testing.F) {
	for _, s := range []string{"api.example.com", "*.example.com", "edi.example.com:8443", "[2001:db8::1]:8443", "2001:db8::1",
		"127.0.0.1:8080", "API.Example.COM.", "*.a", "a:0", "[::1]", "x:65536", "*.*.a", "a/b", ""} {
		f.Add(s, "api.example.com:443")
	}
	f.Fuzz(func(t *testing.T, pattern, host string) {
		h, err := ParseHostPattern(pattern)
		if err != nil {
			return
		}
		again, err := ParseHostPattern(h.String())
		if err != nil || again != h {
			t.Fatalf("%q parsed as %+v prints as %q, which reads back as %+v (%v)", pattern, h, h.String(), again, err)
		}
		r := &Route{Name: "r", Hosts: []HostPattern{h}}
		tbl := newTable([]*Route{r})
		_ = matchString(tbl, host, "443") // any request host: never a panic
		if !h.Wildcard {
			written := h.String()
			if h.Port == "" {
				written += ":443"
			}
			if matchString(tbl, written, "443") != r {
				t.Fatalf("pattern %q does not match the host %q written from it", pattern, written)
			}
		}
	})
}
