// Package authheader writes what a route puts on a request it sends upstream: the token, in the header and
// with the prefix the route names, replacing whatever the app sent under that name, and the route's extra
// headers. The proxy and check both write them here, so check sends what the proxy would.
package authheader

import (
	"net/http"
	"net/textproto"

	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// Set puts route r's token tok and extra headers on h.
func Set(h http.Header, r *config.Route, tok *tokensource.Token) {
	h[textproto.CanonicalMIMEHeaderKey(r.Header)] = tok.HeaderValue(r.Prefix)
	for k, v := range r.Headers {
		h.Set(k, v)
	}
}
