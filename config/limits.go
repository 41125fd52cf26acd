package config

import (
	"strconv"

	"gopkg.in/yaml.v3"
)

// Limits bound what clients of a gateway may hold open (limits: in routes.yaml). Zero is the proxy's
// default, which applies only to a gateway: a proxy that listens beyond loopback or has clients.
type Limits struct {
	// MaxConnections bounds the client connections open at once.
	MaxConnections int
	// MaxConnectionsPerAddress bounds the client connections open at once from one source address.
	MaxConnectionsPerAddress int
}

func (l *loader) limits(n *yaml.Node, path string) Limits {
	var lim Limits
	seen := l.mapping(n, path, map[string]func(*yaml.Node, string){
		"maxConnections":           func(v *yaml.Node, p string) { lim.MaxConnections = l.positive(v, p) },
		"maxConnectionsPerAddress": func(v *yaml.Node, p string) { lim.MaxConnectionsPerAddress = l.positive(v, p) },
	})
	if seen["maxConnections"] != nil && seen["maxConnectionsPerAddress"] != nil && lim.MaxConnectionsPerAddress > lim.MaxConnections {
		l.problem(seen["maxConnectionsPerAddress"], path+".maxConnectionsPerAddress", "%d is more than maxConnections (%d)",
			lim.MaxConnectionsPerAddress, lim.MaxConnections)
	}
	return lim
}

// positive reads a whole number of at least 1.
func (r *nodeReader) positive(n *yaml.Node, path string) int {
	s := r.str(n, path)
	if r.opaque(n) {
		return 0
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		if n.Kind == yaml.ScalarNode {
			r.problem(n, path, "%q is not a whole number of at least 1", n.Value)
		}
		return 0
	}
	return v
}
