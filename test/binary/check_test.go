package binary

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

func TestCheckCommand(t *testing.T) {
	tokens, supplier := checkServers(t)
	config := checkConfig(t, tokens.URL, binSecret, supplier.Listener.Addr().String())

	code, out, errOut := runBinary(t, "", nil, "check", "-config", config, "-route", "orders", "-url", supplier.URL+"/v1/ping")
	assert.Equal(t, 0, code, out+errOut)
	assert.Contains(t, out, "route orders ("+supplier.Listener.Addr().String()+")\n")
	assert.Regexp(t, `✔ token: `+tokens.URL+` answered 200 in \S+; token [0-9a-f]{8}, lifetime 1h0m0s \(from expires_in\), scope granted orders.read`, out)
	assert.Regexp(t, `✔ request: GET `+supplier.URL+`/v1/ping answered 200 in \S+`, out)
	assert.Contains(t, out, "note: a 2xx proves connection and token exchange, not that the supplier accepted the content.")
	assert.NotContains(t, out, "check-token-value")
	assert.NotContains(t, out, binSecret)
	assert.NotContains(t, out, "\x1b[", "no colour when stdout is not a terminal")

	// Every route: the other one has a wrong secret.
	code, out, _ = runBinary(t, "", nil, "check", "-config", config)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "route other (other.example)\n  ✘ token: token endpoint "+tokens.URL+": answered 401 invalid_client (unknown client)")
	assert.Contains(t, out, "  hint: check clientId and clientSecret, or switch authStyle between basic-header and body")
	assert.NotContains(t, out, "wrong")

	// The supplier refuses: the request step is red, with a hint.
	code, out, _ = runBinary(t, "", nil, "check", "-config", config, "-route", "orders", "-url", supplier.URL+"/refuse")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "✘ request: GET "+supplier.URL+"/refuse answered 401")
	assert.Contains(t, out, "hint: the supplier refused the token")
	assert.NotContains(t, out, "note: a 2xx", "the note qualifies a request that passed")

	// A URL of another host never gets the route's token.
	code, out, _ = runBinary(t, "", nil, "check", "-config", config, "-route", "orders", "-url", tokens.URL+"/elsewhere?key=hidden")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "✘ request: "+tokens.URL+"/elsewhere is not one of this route's hosts; its token is not sent there")
	assert.NotContains(t, out, "hidden", "queries are not printed")

	// A tokenPath that finds nothing names the keys that were there.
	bad := writeFile(t, t.TempDir(), "routes.yaml", "routes:\n  - {name: p, hosts: [p.example], tokenUrl: \""+tokens.URL+
		"\", clientId: buyer, clientSecret: \""+binSecret+"\", authStyle: body, tokenPath: data.token}\n")
	code, out, _ = runBinary(t, "", nil, "check", "-config", bad)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "hint: check tokenPath; keys present: access_token, expires_in, scope")
	assert.NotContains(t, out, "check-token-value")

	// A configuration mistake is exit 2, as for the proxy.
	code, _, errOut = runBinary(t, "", nil, "check", "-config", writeFile(t, t.TempDir(), "routes.yaml", "routes: {}\n"))
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "routes: must be a list of routes")

	code, out, _ = runBinary(t, "", nil, "check", "-config", config, "-route", "nope")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, `✘ route "nope" is not in `+config)
}

// check against a supplier whose CA this machine does not trust points at SSL_CERT_FILE, and SSL_CERT_FILE
// naming that CA is indeed the fix.
func TestCheckPointsAtSSLCertFileForAnUntrustedSupplier(t *testing.T) {
	tokens, _ := checkServers(t)
	ca := testkit.CA(t, "Private Supplier CA")
	supplier := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	supplier.TLS = &tls.Config{Certificates: []tls.Certificate{*ca.Issue(t, "supplier.test").TLS}}
	supplier.StartTLS()
	defer supplier.Close()
	config := checkConfig(t, tokens.URL, binSecret, supplier.Listener.Addr().String())
	caFile := writeFile(t, t.TempDir(), "ca.pem", string(ca.PEM))
	args := []string{"check", "-config", config, "-route", "orders", "-url", supplier.URL + "/v1/ping"}

	code, out, _ := runBinary(t, "", []string{"SSL_CERT_DIR=" + t.TempDir()}, args...)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "✘ request: GET "+supplier.URL+"/v1/ping failed after ")
	assert.Contains(t, out, `hint: the supplier's certificate is issued by "CN=Private Supplier CA", which this machine's roots do not include: `+
		"if it is a private CA, add its certificate to the file SSL_CERT_FILE names")
	assert.NotContains(t, out, "note: a 2xx")

	code, out, _ = runBinary(t, "", []string{"SSL_CERT_FILE=" + caFile, "SSL_CERT_DIR=" + t.TempDir()}, args...)
	assert.Equal(t, 0, code, out)
	assert.Contains(t, out, "✔ request: GET "+supplier.URL+"/v1/ping answered 200")
	assert.Contains(t, out, "note: a 2xx proves connection and token exchange")
}
