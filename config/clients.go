package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Client is an allowed caller of a proxy that listens beyond loopback, as the clients list says: who it is
// (source addresses, proxy credentials, or both) and which routes' tokens it may spend. Admission, the
// request's side, is the proxy's.
type Client struct {
	Name string
	// CIDRs are the source addresses the client connects from; empty: any address.
	CIDRs []netip.Prefix
	// Username and Password are its Proxy-Authorization Basic credentials; empty Username: none asked.
	Username, Password string
	// Routes names the routes it may use; nil: every route.
	Routes map[string]bool
}

// Client returns the client with the given name, or nil.
func (c *Config) Client(name string) *Client {
	for _, cl := range c.Clients {
		if cl.Name == name {
			return cl
		}
	}
	return nil
}

func (l *loader) clients(n *yaml.Node, path string) []*Client {
	if n.Kind != yaml.SequenceNode {
		l.problem(n, path, "must be a list of clients")
		return nil
	}
	var out []*Client
	names, users := map[string]int{}, map[string]int{}
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		c := l.client(item, p)
		if c.Name != "" {
			if first, dup := names[c.Name]; dup {
				l.problem(item, p+".name", "%q is already the name of clients[%d]", c.Name, first)
			}
			names[c.Name] = i
		}
		if c.Username != "" {
			if first, dup := users[c.Username]; dup {
				l.problem(item, p+".proxyAuth.username", "%q is already the username of clients[%d]", c.Username, first)
			}
			users[c.Username] = i
		}
		out = append(out, c)
	}
	if len(n.Content) == 0 {
		l.problem(n, path, "must name at least one client (or leave clients out on a loopback listen address)")
	}
	return out
}

func (l *loader) client(n *yaml.Node, path string) *Client {
	c := &Client{}
	var routesNode *yaml.Node
	seen := l.mapping(n, path, map[string]func(*yaml.Node, string){
		"name": func(v *yaml.Node, p string) { c.Name = l.nonEmpty(v, p) },
		"cidrs": func(v *yaml.Node, p string) {
			l.list(v, p, func(s string, item *yaml.Node, p string) {
				if l.opaque(item) {
					return
				}
				prefix, err := parsePrefix(s)
				if err != nil {
					l.problem(item, p, "%q is not an address or CIDR like 10.1.0.0/16", item.Value)
					return
				}
				c.CIDRs = append(c.CIDRs, prefix)
			})
		},
		"proxyAuth": func(v *yaml.Node, p string) { c.Username, c.Password = l.proxyAuth(v, p) },
		"routes":    func(v *yaml.Node, p string) { routesNode = v; c.Routes = map[string]bool{} },
	})
	if n.Kind != yaml.MappingNode {
		return c
	}
	l.require(n, path, seen, "name")
	if seen["cidrs"] == nil && seen["proxyAuth"] == nil && !l.mistyped(n, "cidrs", "proxyAuth") {
		l.problem(n, path, "set cidrs, proxyAuth or both: a client must be told apart from everyone else")
	}
	if routesNode != nil {
		l.list(routesNode, path+".routes", func(s string, item *yaml.Node, p string) {
			c.Routes[s] = true
			l.pendingRoutes = append(l.pendingRoutes, pendingRoute{item, p, s})
		})
	}
	return c
}

func (l *loader) proxyAuth(n *yaml.Node, path string) (user, password string) {
	var pwNode, pwFileNode *yaml.Node
	seen := l.mapping(n, path, map[string]func(*yaml.Node, string){
		"username": func(v *yaml.Node, p string) {
			user = l.nonEmpty(v, p)
			if strings.Contains(user, ":") {
				l.problem(v, p, "a Basic username cannot contain ':'")
			}
		},
		"password":     func(v *yaml.Node, p string) { pwNode, password = v, l.nonEmpty(v, p) },
		"passwordFile": func(v *yaml.Node, p string) { pwFileNode, password = v, l.readSecretFile(v, p, l.fileName(v, p)) },
	})
	if n.Kind != yaml.MappingNode {
		return "", ""
	}
	l.require(n, path, seen, "username")
	switch {
	case pwNode != nil && pwFileNode != nil:
		l.problem(pwFileNode, path+".passwordFile", "set password or passwordFile, not both")
	case pwNode == nil && pwFileNode == nil && !l.mistyped(n, "password", "passwordFile"):
		l.problem(n, path+".password", "required key is missing (or set passwordFile)")
	}
	return user, password
}

// pendingRoute is a route name a client lists, checked once every route is known.
type pendingRoute struct {
	at   *yaml.Node
	path string
	name string
}

// checkClients checks what needs both clients and routes: the routes clients name exist, and a listen
// address beyond loopback has clients, since anyone who reaches it could spend every route's tokens.
func (l *loader) checkClients(cfg *Config, listenNode *yaml.Node) {
	for _, pr := range l.pendingRoutes {
		if cfg.Route(pr.name) == nil && !l.opaque(pr.at) {
			l.problem(pr.at, pr.path, "%q is not the name of a route", pr.at.Value)
		}
	}
	if len(cfg.Clients) > 0 || listenNode == nil || l.opaque(listenNode) {
		return
	}
	if host, _, err := net.SplitHostPort(cfg.Listen); err == nil && !IsLoopback(host) {
		shown := strconv.Quote(listenNode.Value)
		if listenNode.Value != cfg.Listen { // an address is no secret: show what the variable made of it
			shown += " (" + cfg.Listen + ")"
		}
		l.problem(listenNode, "listen", "%s is not a loopback address, so other machines could spend the routes' tokens: "+
			"add clients (who may use the proxy, by address or proxyAuth), or listen on 127.0.0.1", shown)
	}
}

// parsePrefix reads "10.1.0.0/16", "10.1.2.3" (one address) or their IPv6 forms.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
