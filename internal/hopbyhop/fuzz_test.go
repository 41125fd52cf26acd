package hopbyhop

import (
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

// After Remove no hop-by-hop header is left, nor any header the Connection header named; the message's
// own headers stay.
func FuzzRemove(f *testing.F) {
	f.Add("keep-alive, X-Private", "X-Private: 1\nKeep-Alive: 5\nX-Kept: yes")
	f.Add("Upgrade", "Upgrade: websocket\nX-Kept: yes")
	f.Add("", "Te: trailers\nTransfer-Encoding: chunked\nProxy-Authorization: Basic x")
	f.Add("close, , te", "Te: gzip, trailers\nTrailer: X-Sum")
	f.Fuzz(func(t *testing.T, connection, lines string) {
		h := http.Header{}
		for _, line := range strings.Split(lines, "\n") {
			name, value, ok := strings.Cut(line, ":")
			if ok && name != "" {
				h.Add(name, strings.TrimSpace(value))
			}
		}
		if connection != "" {
			h.Set("Connection", connection)
		}
		upgrade := upgradeType(h)
		named := map[string]bool{}
		for _, v := range h["Connection"] {
			for _, n := range strings.Split(v, ",") {
				named[textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(n))] = true
			}
		}
		before := h.Clone()
		Remove(h)
		for name := range h {
			switch {
			case upgrade != "" && (name == "Connection" || name == "Upgrade"):
				// an upgrade keeps what the next hop needs to switch protocols
			case name == "Te" && h.Get("Te") == "trailers":
				// TE: trailers asks the next hop too
			case Is(name):
				t.Fatalf("hop-by-hop %s left: %v", name, h)
			case named[name]:
				t.Fatalf("%s was named in Connection and is left: %v", name, h)
			}
		}
		for name := range before {
			if !Is(name) && !named[name] {
				if _, ok := h[name]; !ok {
					t.Fatalf("the message's own header %s was removed", name)
				}
			}
		}
	})
}
