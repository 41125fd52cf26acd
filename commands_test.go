package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/secrets"
)

// runBinary runs the built tokenproxy and returns its exit code, stdout and stderr.
func runBinary(t *testing.T, stdin string, env []string, args ...string) (int, string, string) {
	return runWith(t, binary, stdin, env, args...)
}

// runCommand runs a program with args and returns its exit code, stdout and stderr.
func runCommand(t *testing.T, path string, args ...string) (int, string, string) {
	return runWith(t, path, "", nil, args...)
}

// runGo runs the go command in the module's directory.
func runGo(args ...string) (string, error) {
	out, err := exec.Command("go", args...).CombinedOutput()
	return string(out), err
}

func runWith(t *testing.T, path, stdin string, env []string, args ...string) (int, string, string) {
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, stdout.String(), stderr.String()
}

// checkServers are a token endpoint that wants binSecret in the body and a supplier that wants its token.
func checkServers(t *testing.T) (tokens, supplier *httptest.Server, tokenRequests *atomic.Int64) {
	tokenRequests = &atomic.Int64{}
	tokens = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenRequests.Add(1)
		_ = r.ParseForm()
		if r.PostForm.Get("client_secret") != binSecret {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"unknown client"}`)
			return
		}
		_, _ = io.WriteString(w, `{"access_token":"check-token-value","expires_in":3600,"scope":"orders.read"}`)
	}))
	t.Cleanup(tokens.Close)
	supplier = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer check-token-value" || r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(supplier.Close)
	return tokens, supplier, tokenRequests
}

func checkConfig(t *testing.T, tokenURL, secret, supplierHost string) string {
	return writeFile(t, t.TempDir(), "routes.yaml", fmt.Sprintf(`
routes:
  - name: orders
    hosts: ["%s"]
    tokenUrl: %s
    clientId: buyer
    clientSecret: "%s"
    authStyle: body
  - name: other
    hosts: [other.example]
    tokenUrl: %s
    clientId: buyer
    clientSecret: wrong
    authStyle: body
`, supplierHost, tokenURL, secret, tokenURL))
}

func TestCheckCommand(t *testing.T) {
	tokens, supplier, _ := checkServers(t)
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
	tokens, _, _ := checkServers(t)
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

func TestEncryptThenRunWithTheEncryptedSecret(t *testing.T) {
	key, err := secrets.NewKey()
	require.NoError(t, err)
	keyEnv := []string{secrets.KeyEnv + "=" + key}

	code, value, errOut := runBinary(t, binSecret+"\n", keyEnv, "encrypt")
	require.Equal(t, 0, code, errOut)
	value = strings.TrimSpace(value)
	assert.True(t, strings.HasPrefix(value, "aes256gcm:"))
	assert.NotContains(t, value, binSecret)

	tokens, supplier, tokenRequests := checkServers(t)
	config := checkConfig(t, tokens.URL, value, supplier.Listener.Addr().String())
	code, out, _ := runBinary(t, "", keyEnv, "check", "-config", config, "-route", "orders", "-url", supplier.URL)
	assert.Equal(t, 0, code, "the token endpoint received the decrypted secret:\n"+out)
	assert.EqualValues(t, 1, tokenRequests.Load())

	// The key may come from a file instead.
	keyFile := writeFile(t, t.TempDir(), "key", key+"\n")
	code, _, _ = runBinary(t, "", nil, "check", "-config", config, "-route", "orders", "-secret-key-file", keyFile)
	assert.Equal(t, 0, code)
	assert.EqualValues(t, 2, tokenRequests.Load())

	other, err := secrets.NewKey()
	require.NoError(t, err)
	code, _, errOut = runBinary(t, "", []string{secrets.KeyEnv + "=" + other}, "-config", config)
	assert.Equal(t, 2, code, "a wrong key stops start-up")
	assert.Contains(t, errOut, `routes[0].clientSecret: route "orders": the encrypted secret does not decrypt with this key`)
	assert.EqualValues(t, 2, tokenRequests.Load(), "no garbled secret was ever sent")

	code, _, errOut = runBinary(t, "", []string{secrets.KeyEnv + "="}, "-config", config)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "the encrypted secret needs a key: set TOKENPROXY_SECRET_KEY or -secret-key-file")

	code, _, errOut = runBinary(t, binSecret, []string{secrets.KeyEnv + "="}, "encrypt")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "no key: set TOKENPROXY_SECRET_KEY")
	assert.Contains(t, errOut, "A new key, if you need one")
}
