package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/tokenproxy/tokenproxy/config"
)

// Why the clients rules refused a request, as counted in tokenproxy_client_denials_total.
const (
	deniedAddress     = "address"
	deniedCredentials = "credentials"
	deniedRoute       = "route"
)

// admitted is a client of the clients list as admission compares it: the SHA-256 sums of its credentials
// are made once per configuration, and a request's are compared with them in constant time.
type admitted struct {
	*config.Client
	userSum, passwordSum [32]byte
}

// admittedClients makes the clients of a configuration ready for admission.
func admittedClients(clients []*config.Client) []*admitted {
	out := make([]*admitted, len(clients))
	for i, c := range clients {
		out[i] = &admitted{Client: c, userSum: sha256.Sum256([]byte(c.Username)), passwordSum: sha256.Sum256([]byte(c.Password))}
	}
	return out
}

// credentials tells whether the sums of a request's Basic user and password name this client and are its
// password. Both are compared in constant time, so the time taken tells nothing of either.
func (c *admitted) credentials(userSum, passwordSum *[32]byte) (named, passwordOK bool) {
	named = subtle.ConstantTimeCompare(c.userSum[:], userSum[:]) == 1 && c.Username != ""
	passwordOK = subtle.ConstantTimeCompare(c.passwordSum[:], passwordSum[:]) == 1
	return named, passwordOK
}

// fromAddress reports whether addr is one of the client's source addresses (any, when it names none).
func (c *admitted) fromAddress(addr netip.Addr) bool {
	if len(c.CIDRs) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, p := range c.CIDRs {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// mayUse reports whether the client may spend route's tokens.
func (c *admitted) mayUse(route string) bool { return c.Routes == nil || c.Routes[route] }

// client returns the client of the snapshot with the given name, or nil.
func (snap *snapshot) client(name string) *admitted {
	for _, c := range snap.clients {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// admission applies the clients rules to a request whose route is known: a CONNECT, a plain request, or a
// request inside an intercepted connection (whose client was identified at its CONNECT). It returns the
// client, or tokenproxy's refusal. Without clients, everyone who reaches the port is let in.
func (s *Server) admission(x *exchange, r *http.Request) (*config.Client, *http.Response) {
	clients := x.snap.clients
	if len(clients) == 0 {
		return nil, nil
	}
	addr := remoteAddr(r.RemoteAddr)
	var client *admitted
	reason := ""
	if x.tunnel != nil {
		// Credentials went with the CONNECT; a reload may have removed the client since, or changed its
		// password (perhaps because it leaked).
		switch client = x.snap.client(x.tunnel.client); {
		case client == nil || client.Username != x.tunnel.username || client.Password != x.tunnel.password:
			reason = deniedCredentials
		case !client.fromAddress(addr):
			reason = deniedAddress
		}
	} else {
		client, reason = identify(clients, addr, r.Header.Get("Proxy-Authorization"))
	}
	// A client limited to some routes reaches only their hosts: no other host, tunnelled or forwarded.
	if reason == "" && (x.route == nil && client.Routes != nil || x.route != nil && !client.mayUse(x.route.Name)) {
		reason = deniedRoute
	}
	if reason == "" {
		x.client = client.Name
		return client.Client, nil
	}
	return nil, s.deny(x, r, client, reason, addr)
}

// identify finds the client a request comes from: by its credentials when they name a client's user,
// else by its address (an app may send credentials meant for another proxy). A client with both must
// match both. The reason is empty when a client was found.
func identify(clients []*admitted, addr netip.Addr, proxyAuth string) (*admitted, string) {
	if user, password, ok := parseBasic(proxyAuth); ok {
		// Compared as sums, every client's name and password, so the time taken tells nothing of either.
		userSum, passwordSum := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
		var named *admitted
		passwordOK := false
		for _, c := range clients {
			if isNamed, ok := c.credentials(&userSum, &passwordSum); isNamed && named == nil {
				named, passwordOK = c, ok
			}
		}
		if named != nil {
			if !passwordOK {
				return nil, deniedCredentials
			}
			if !named.fromAddress(addr) {
				return named, deniedAddress
			}
			return named, ""
		}
	}
	asksCredentials := false
	for _, c := range clients {
		if c.Username != "" {
			asksCredentials = true
			continue // this client must say who it is
		}
		if c.fromAddress(addr) {
			return c, ""
		}
	}
	if asksCredentials {
		return nil, deniedCredentials
	}
	return nil, deniedAddress
}

// deny makes the refusal: 407 (with Proxy-Authenticate) when credentials would help, 403 otherwise. It is
// logged and counted here.
func (s *Server) deny(x *exchange, r *http.Request, client *admitted, reason string, addr netip.Addr) *http.Response {
	x.step = StepPolicy
	status, body := http.StatusForbidden, ""
	switch reason {
	case deniedCredentials:
		status = http.StatusProxyAuthRequired
		body = "tokenproxy: this proxy is shared; send Proxy-Authorization (Basic) with the credentials of a client in its clients list\n"
	case deniedAddress:
		body = fmt.Sprintf("tokenproxy: %s is not an address this proxy's clients list allows\n", addr)
	case deniedRoute:
		body = fmt.Sprintf("tokenproxy: client %q may not use route %q\n", client.Name, routeName(x.route))
		if x.route == nil {
			body = fmt.Sprintf("tokenproxy: client %q may use only the routes its entry lists, and %s matches no route\n", client.Name, x.host)
		}
	}
	// Who the app is was not established: its connection closes (and respond reads no byte of its body).
	closing := reason == deniedCredentials || reason == deniedAddress
	if closing && x.tunnel != nil {
		// The client the CONNECT identified is gone or changed (a reload changed the rules). Clients are
		// judged at the CONNECT, so close the connection: the app's next request opens a new one.
		body = "tokenproxy: the clients rules changed since this connection was opened, so it is closed; " +
			"a new connection (CONNECT) is judged by the rules in service now\n" + body
	}
	resp := refusal(r, status, body)
	if status == http.StatusProxyAuthRequired {
		resp.Header.Set("Proxy-Authenticate", `Basic realm="tokenproxy"`)
	}
	if closing {
		resp.Header.Set("Connection", "close")
		resp.Close = true
	}
	clientName := "-"
	if client != nil {
		clientName = client.Name
	}
	s.log.Warn("request refused by the clients rules", "reason", reason, "client", clientName, "remote", addr.String(),
		"route", routeName(x.route), "host", x.host)
	s.metrics.Denied(reason)
	return resp
}

// parseBasic reads a Proxy-Authorization Basic header.
func parseBasic(h string) (user, password string, ok bool) {
	const prefix = "basic "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[len(prefix):]))
	if err != nil {
		return "", "", false
	}
	user, password, ok = strings.Cut(string(raw), ":")
	return user, password, ok
}

// remoteAddr is the IP address of a request's RemoteAddr ("ip:port").
func remoteAddr(hostport string) netip.Addr {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}
