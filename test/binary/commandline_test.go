package binary

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", `
routes:
  - name: a
    hosts: [a.example]
    issuer: https://127.0.0.1:1/never-asked
    clientId: c
    clientSecret: ${VALIDATE_SECRET}
`)
	code, out, errOut := runBinary(t, "", []string{"VALIDATE_SECRET=x"}, "validate", "-config", good)
	assert.Equal(t, 0, code, errOut)
	assert.Equal(t, good+": valid, 1 route\n", out, "no discovery, no network")

	code, _, errOut = runBinary(t, "", nil, "validate", "-config", good)
	assert.Equal(t, 2, code)
	assert.Equal(t, good+":7: routes[0].clientSecret: environment variable VALIDATE_SECRET is not set\n", errOut)

	code, out, _ = runBinary(t, "", nil, "validate", "-config", good, "-syntax-only")
	assert.Equal(t, 0, code)
	assert.Equal(t, good+": valid syntax, 1 route\n", out)

	code, _, errOut = runBinary(t, "", []string{"VALIDATE_SECRET="}, "validate", "-config", good)
	assert.Equal(t, 2, code)
	assert.Equal(t, good+":7: routes[0].clientSecret: VALIDATE_SECRET is set but empty\n", errOut)

	broken := writeFile(t, dir, "broken.yaml", "listen: 127.0.0.1:3128\nunmatched: forward\nroutes:\n  - hosts: [a.example, b\n    name: x\n")
	code, _, errOut = runBinary(t, "", nil, "validate", "-config", broken)
	assert.Equal(t, 2, code)
	assert.Equal(t, broken+":4: did not find expected ',' or ']'\n", errOut)

	typo := writeFile(t, dir, "typo.yaml", "routes:\n  - name: a\n    hosts: [a.example]\n    tokenUrl: https://auth.example/t\n    clientId: c\n    clientSecret: s\n    authstyle: body\n    scop: x\n")
	code, _, errOut = runBinary(t, "", nil, "validate", "-config", typo, "-syntax-only")
	assert.Equal(t, 2, code)
	assert.Equal(t, typo+":7: routes[0].authstyle: unknown key; did you mean authStyle?\n"+
		typo+":8: routes[0].scop: unknown key; did you mean scope?\n", errOut)

	// A mistyped required key is one line: the unknown key says what it should be.
	requiredTypo := writeFile(t, dir, "requiredtypo.yaml", "routes:\n  - name: a\n    hosts: [a.example]\n    tokenUri: https://auth.example/t\n    clientld: c\n    clientSecret: s\n")
	code, _, errOut = runBinary(t, "", nil, "validate", "-config", requiredTypo)
	assert.Equal(t, 2, code)
	assert.Equal(t, requiredTypo+":4: routes[0].tokenUri: unknown key; did you mean tokenUrl?\n"+
		requiredTypo+":5: routes[0].clientld: unknown key; did you mean clientId?\n", errOut)

	// An API key from a variable set but empty is named, not sent empty.
	apiKey := writeFile(t, dir, "apikey.yaml", "routes:\n  - name: a\n    hosts: [a.example]\n    tokenUrl: https://auth.example/t\n"+
		"    clientId: c\n    clientSecret: s\n    headers: {X-Api-Key: \"${SUPPLIER_API_KEY}\"}\n    tokenHeaders: {X-Gateway-Key: \"${GATEWAY_KEY}\"}\n")
	code, out, errOut = runBinary(t, "", []string{"SUPPLIER_API_KEY=", "GATEWAY_KEY="}, "validate", "-config", apiKey)
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	assert.Equal(t, apiKey+":7: routes[0].headers.X-Api-Key: SUPPLIER_API_KEY is set but empty\n"+
		apiKey+":8: routes[0].tokenHeaders.X-Gateway-Key: GATEWAY_KEY is set but empty\n", errOut)
	code, out, errOut = runBinary(t, "", []string{"SUPPLIER_API_KEY=k", "GATEWAY_KEY=g"}, "validate", "-config", apiKey)
	assert.Equal(t, 0, code, errOut)
	assert.Equal(t, apiKey+": valid, 1 route\n", out)

	// params never replace a field tokenproxy sends, not even under -syntax-only.
	override := writeFile(t, dir, "override.yaml", "routes:\n  - name: a\n    hosts: [a.example]\n    tokenUrl: https://auth.example/t\n"+
		"    clientId: c\n    clientSecret: s\n    params: {client_secret: other, grant_type: password}\n")
	for _, args := range [][]string{{"validate", "-config", override}, {"validate", "-config", override, "-syntax-only"}} {
		code, out, errOut = runBinary(t, "", nil, args...)
		assert.Equal(t, 2, code)
		assert.Empty(t, out)
		assert.Equal(t, override+":7: routes[0].params.client_secret: params may not set client_secret: tokenproxy sends it from clientSecret or clientSecretFile\n"+
			override+":7: routes[0].params.grant_type: params may not set grant_type: tokenproxy sends it from grantType\n", errOut)
	}

	// Files it cannot read, and an empty CA name, are errors as at start-up; -syntax-only reads no file.
	files := writeFile(t, dir, "files.yaml", "mitm:\n  caCert: ${CA_DIR}/ca.crt\n  caKey: ${CA_KEY}\n"+
		"routes:\n  - name: a\n    hosts: [a.example]\n    tokenUrl: https://auth.example/t\n    clientId: c\n    clientSecretFile: missing-secret\n")
	code, _, errOut = runBinary(t, "", []string{"CA_DIR=" + dir, "CA_KEY="}, "validate", "-config", files)
	assert.Equal(t, 2, code)
	assert.Equal(t, files+":2: mitm.caCert: cannot read "+filepath.Join(dir, "ca.crt")+": no such file or directory\n"+
		files+":3: mitm.caKey: CA_KEY is set but empty\n"+
		files+":9: routes[0].clientSecretFile: cannot read "+filepath.Join(dir, "missing-secret")+": no such file or directory\n", errOut)
	code, _, errOut = runBinary(t, "", nil, "validate", "-config", files, "-syntax-only")
	assert.Equal(t, 0, code, errOut)

	// The secret key's problems name where the key came from.
	code, _, errOut = runBinary(t, "", []string{"VALIDATE_SECRET=x"}, "validate", "-config", good, "-secret-key-file", filepath.Join(dir, "no-key"))
	assert.Equal(t, 2, code)
	assert.Equal(t, "tokenproxy: -secret-key-file "+filepath.Join(dir, "no-key")+": cannot read: no such file or directory\n", errOut)
	code, _, errOut = runBinary(t, "", []string{"VALIDATE_SECRET=x", "TOKENPROXY_SECRET_KEY=not base64"}, "validate", "-config", good)
	assert.Equal(t, 2, code)
	assert.Equal(t, "tokenproxy: $TOKENPROXY_SECRET_KEY: the secret key is not base64\n", errOut)
}

func TestCommandLine(t *testing.T) {
	code, _, errOut := runBinary(t, "", nil, "verison")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `tokenproxy: unknown command "verison"; commands: ca, check, encrypt, health, serve, validate, version`)

	code, _, errOut = runBinary(t, "", nil, "validate", "-config", "x.yaml", "stray")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `tokenproxy validate: unexpected argument "stray"`)
	code, _, errOut = runBinary(t, "", nil, "-config", "x.yaml", "stray")
	assert.Equal(t, 2, code, "the proxy does not start with a stray word")
	assert.Contains(t, errOut, `unexpected argument "stray" (flags come as -name value; commands: ca, check, encrypt, health, serve, validate, version)`)

	code, out, _ := runBinary(t, "", nil, "version")
	assert.Equal(t, 0, code)
	assert.Regexp(t, `^tokenproxy \S+ \(revision \S+.*, go1\.\d+`, out)

	// -h: each command's flags, each default said once, and exit 0.
	for _, cmd := range []string{"", "serve", "validate", "check", "health", "encrypt", "ca", "version"} {
		args := []string{"-h"}
		if cmd != "" {
			args = []string{cmd, "-h"}
		}
		code, _, errOut := runBinary(t, "", nil, args...)
		assert.Equal(t, 0, code, cmd)
		assert.Equal(t, 1, strings.Count(errOut, "usage:"), "%s -h: %s", cmd, errOut)
		lines := strings.Split(errOut, "\n")
		for _, line := range lines {
			assert.LessOrEqual(t, strings.Count(strings.ToLower(line), "default"), 1, "%s -h: %q", cmd, line)
			if strings.HasPrefix(line, "  -") || strings.Contains(line, "(default") { // a flag, or its default
				same := 0
				for _, l := range lines {
					if l == line {
						same++
					}
				}
				assert.Equal(t, 1, same, "%s -h says %q more than once", cmd, line)
			}
		}
	}
	_, _, errOut = runBinary(t, "", nil, "-h")
	assert.Contains(t, errOut, "tokenproxy validate", "the proxy's -h lists the commands")
	assert.Contains(t, errOut, "[-drain-delay D]", "the serve line names every serve flag")

	// help: the usage, one command's flags, or an error naming the word.
	code, out, _ = runBinary(t, "", nil, "help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "tokenproxy health [-config F]")
	code, out, _ = runBinary(t, "", nil, "help", "validate")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "usage: tokenproxy validate")
	assert.Contains(t, out, "-syntax-only")
	code, _, errOut = runBinary(t, "", nil, "help", "verison")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `tokenproxy help: "verison" is not a command; commands: ca, check`)
	code, _, errOut = runBinary(t, "", nil, "help", "validate", "extra")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `tokenproxy help: one command at a time (got "validate extra")`)
}
