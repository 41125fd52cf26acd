// Package hopbyhop removes the headers that describe one connection rather than the message (RFC 9110
// §7.6.1), so a proxy never forwards them.
package hopbyhop

import (
	"net/http"
	"strings"
)

// names are the headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the
// proxy's own. They are never forwarded.
var names = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// Is reports whether name is always a hop-by-hop header.
func Is(name string) bool {
	for _, hop := range names {
		if strings.EqualFold(name, hop) {
			return true
		}
	}
	return false
}

// Remove deletes hop-by-hop headers and those named in Connection. An upgrade (websocket) keeps
// "Connection: Upgrade" and its Upgrade header, which the next hop needs to switch protocols.
func Remove(h http.Header) {
	upgrade := upgradeType(h)
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	// "TE: trailers" asks the next hop too (gRPC needs it), so it survives.
	trailers := false
	for _, v := range h["Te"] {
		if strings.EqualFold(strings.TrimSpace(v), "trailers") {
			trailers = true
		}
	}
	for _, name := range names {
		delete(h, name)
	}
	if trailers {
		h["Te"] = []string{"trailers"}
	}
	if upgrade != "" {
		h["Connection"] = []string{"Upgrade"}
		h["Upgrade"] = []string{upgrade}
	}
}

// upgradeType returns the protocol an upgrade request or 101 response switches to, or "".
func upgradeType(h http.Header) string {
	for _, v := range h["Connection"] {
		for _, token := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "upgrade") {
				return h.Get("Upgrade")
			}
		}
	}
	return ""
}
