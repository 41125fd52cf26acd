package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/mitm"
	"github.com/tokenproxy/tokenproxy/redisstore"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
}

const validRoute = `
  - name: orders
    hosts: [api.supplier.example]
    tokenUrl: https://auth.supplier.example/oauth/token
    clientId: buyer
    clientSecret: ${SECRET}
`

func TestParseConfigValid(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("from-file\n"), 0o600))
	file := filepath.Join(dir, "routes.yaml")
	cfg, err := Parse(file, []byte(`
listen: 127.0.0.1:9999
unmatched: reject
routes:
  - name: orders
    hosts: [api.supplier.example, "*.Supplier.example", "edi.supplier.example:8443"]
    tokenUrl: https://auth.supplier.example/oauth/token
    clientId: buyer-${TENANT}
    clientSecret: ${SECRET}
    scope: orders.write orders.read
    grantType: client_credentials
    authStyle: body
    requestStyle: json
    tokenPath: data.token
    cache: false
    upstreamTLS: true
  - name: local
    hosts: ["127.0.0.1:8080"]
    tokenUrl: http://localhost:9000/token
    clientId: c
    clientSecretFile: secret
`), LoadOptions{LookupEnv: env(map[string]string{"SECRET": "s3cr3t", "TENANT": "42"})})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9999", cfg.Listen)
	assert.True(t, cfg.RejectUnmatched)
	assert.Nil(t, cfg.MITM)
	require.Len(t, cfg.Routes, 2)
	r := cfg.Routes[0]
	assert.Equal(t, "orders", r.Name)
	assert.Equal(t, []HostPattern{{Name: "api.supplier.example"}, {Wildcard: true, Name: "supplier.example"},
		{Name: "edi.supplier.example", Port: "8443"}}, r.Hosts)
	assert.Equal(t, tokensource.Config{TokenURL: "https://auth.supplier.example/oauth/token", ClientID: "buyer-42",
		ClientSecret: "s3cr3t", Scope: "orders.write orders.read", GrantType: "client_credentials",
		AuthStyle: tokensource.AuthBody, RequestStyle: tokensource.RequestJSON, TokenPath: "data.token"}, r.Token)
	assert.False(t, r.Cache)
	assert.True(t, r.UpstreamTLS)
	assert.Equal(t, "from-file", cfg.Routes[1].Token.ClientSecret, "relative to routes.yaml, newline trimmed")
	assert.True(t, cfg.Routes[1].Cache, "cache defaults to true")
}

func TestLimits(t *testing.T) {
	cfg, err := Parse("routes.yaml", []byte("limits:\n  maxConnections: 2000\n  maxConnectionsPerAddress: 64\nroutes:"+validRoute),
		LoadOptions{LookupEnv: env(map[string]string{"SECRET": "x"})})
	require.NoError(t, err)
	assert.Equal(t, Limits{MaxConnections: 2000, MaxConnectionsPerAddress: 64}, cfg.Limits)
	cfg, err = Parse("routes.yaml", []byte("limits: {maxConnectionsPerAddress: 10}\nroutes:"+validRoute),
		LoadOptions{LookupEnv: env(map[string]string{"SECRET": "x"})})
	require.NoError(t, err)
	assert.Equal(t, Limits{MaxConnectionsPerAddress: 10}, cfg.Limits, "an unset limit is zero: the proxy's default")
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := Parse("routes.yaml", []byte("routes:"+validRoute), LoadOptions{LookupEnv: env(map[string]string{"SECRET": "x"})})
	require.NoError(t, err)
	assert.Equal(t, DefaultListen, cfg.Listen)
	assert.False(t, cfg.RejectUnmatched)
	assert.True(t, cfg.Routes[0].Cache)
	assert.False(t, cfg.Routes[0].UpstreamTLS)
	assert.Zero(t, cfg.Limits)
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each must appear as a whole line
	}{
		{"unknown key", "routes:" + validRoute + "    tokenPth: data.token\n",
			[]string{"routes.yaml:7: routes[0].tokenPth: unknown key; did you mean tokenPath?"}},
		{"unknown top-level key", "listn: 1\nroutes:" + validRoute,
			[]string{"routes.yaml:1: listn: unknown key; did you mean listen?"}},
		{"unknown key in another case", "routes:" + validRoute + "    authstyle: body\n",
			[]string{"routes.yaml:7: routes[0].authstyle: unknown key; did you mean authStyle?"}},
		{"unknown key like none", "routes:" + validRoute + "    colour: blue\n",
			[]string{"routes.yaml:7: routes[0].colour: unknown key"}},
		{"unset variable", "routes:" + strings.Replace(validRoute, "${SECRET}", "${NOPE}", 1),
			[]string{"routes.yaml:6: routes[0].clientSecret: environment variable NOPE is not set"}},
		{"missing fields", "routes:\n  - name: a\n    hosts: [a.example]\n",
			[]string{"routes.yaml:2: routes[0].tokenUrl: required key is missing (or set issuer)",
				"routes.yaml:2: routes[0].clientId: required key is missing",
				"routes.yaml:2: routes[0].clientSecret: required key is missing (or set clientSecretFile)"}},
		{"bad enums", "unmatched: drop\nroutes:" + validRoute + "    authStyle: header\n    requestStyle: xml\n    cache: maybe\n",
			[]string{`routes.yaml:1: unmatched: "drop" is not one of forward | reject`,
				`routes.yaml:8: routes[0].authStyle: "header" is not one of basic-header | body | auto | private-key-jwt | client-secret-jwt | tls-client-auth`,
				`routes.yaml:9: routes[0].requestStyle: "xml" is not one of form | json`,
				`routes.yaml:10: routes[0].cache: must be true or false`}},
		{"duplicate name and host", "routes:" + validRoute + strings.Replace(validRoute, "API.", "api.", 1),
			[]string{`routes.yaml:8: routes[1].name: "orders" is already the name of routes[0]`,
				`routes.yaml:8: routes[1].hosts[0]: "api.supplier.example" is already claimed by route "orders"`}},
		{"host claimed with other case", "routes:" + validRoute + strings.NewReplacer("orders", "b", "api.supplier", "API.Supplier").Replace(validRoute),
			[]string{`routes.yaml:8: routes[1].hosts[0]: "api.supplier.example" is already claimed by route "orders"`}},
		{"plain http token url", "routes:" + strings.Replace(validRoute, "https://auth", "http://auth", 1),
			[]string{"routes.yaml:4: routes[0].tokenUrl: must use https (plain http is allowed only for localhost, 127.0.0.0/8 and ::1)"}},
		{"bad hosts", "routes:" + strings.Replace(validRoute, "[api.supplier.example]", `["https://x.example/", "a.*.example", "x:99999"]`, 1),
			[]string{`routes.yaml:3: routes[0].hosts[0]: "https://x.example/": a host is a name with an optional port, without scheme or path`,
				`routes.yaml:3: routes[0].hosts[1]: "a.*.example": a wildcard may only be a leading "*."`,
				`routes.yaml:3: routes[0].hosts[2]: "x:99999": bad host:port: not a port: want a number from 1 to 65535`}},
		{"secret twice", "routes:" + validRoute + "    clientSecretFile: /run/secret\n",
			[]string{"routes.yaml:7: routes[0].clientSecretFile: cannot read /run/secret: no such file or directory",
				"routes.yaml:7: routes[0].clientSecretFile: set clientSecret or clientSecretFile, not both"}},
		{"mitm incomplete", "mitm:\n  caCert: ca.crt\nroutes:" + validRoute,
			[]string{"routes.yaml:2: mitm.caKey: required key is missing", "routes.yaml:2: mitm.caCert: cannot read ca.crt: no such file or directory"}},
		{"routes not a list", "routes: {}\n", []string{"routes.yaml:1: routes: must be a list of routes"}},
		// An empty variable is named wherever it breaks a value, and an empty CA file name never turns
		// interception off quietly.
		{"empty variables everywhere", "listen: \"${EMPTY}\"\nadmin: \"${EMPTY}\"\nmitm:\n  caCert: ${EMPTY}\n  caKey: \"\"\nroutes:" +
			strings.NewReplacer("[api.supplier.example]", "[\"${EMPTY}\"]", "clientSecret: ${SECRET}", "clientSecretFile: ${EMPTY}").Replace(validRoute),
			[]string{`routes.yaml:1: listen: "${EMPTY}" is not host:port (EMPTY is set but empty)`,
				`routes.yaml:2: admin: "${EMPTY}" is not host:port (EMPTY is set but empty)`,
				"routes.yaml:4: mitm.caCert: EMPTY is set but empty",
				"routes.yaml:5: mitm.caKey: must not be empty",
				`routes.yaml:8: routes[0].hosts[0]: "${EMPTY}": empty host (EMPTY is set but empty)`,
				"routes.yaml:11: routes[0].clientSecretFile: EMPTY is set but empty"}},
		// What goes to a supplier as written (API keys, token-request fields) names an empty variable wherever
		// it is in the value: "ApiKey " is as empty a key as "".
		{"empty variables in headers and params", "routes:" + validRoute +
			"    headers: {X-Api-Key: \"${EMPTY}\", X-Set: \"${SECRET}\", X-Literal: \"\"}\n" +
			"    tokenHeaders:\n      X-Gateway-Key: \"ApiKey ${EMPTY}\"\n" +
			"    params: {audience: \"${EMPTY}${SECRET}\", resource: r}\n",
			[]string{"routes.yaml:7: routes[0].headers.X-Api-Key: EMPTY is set but empty",
				"routes.yaml:9: routes[0].tokenHeaders.X-Gateway-Key: EMPTY is set but empty",
				"routes.yaml:10: routes[0].params.audience: EMPTY is set but empty"}},
		{"syntax", "routes:\n  - name: [\n", []string{"routes.yaml:2: did not find expected node content"}},
		{"bad listen", "listen: nowhere\nroutes:" + validRoute, []string{`routes.yaml:1: listen: "nowhere" is not host:port`}},
		{"key twice", "routes:" + validRoute + "    clientId: other\n", []string{"routes.yaml:7: routes[0].clientId: given twice (first on line 5)"}},
		{"bad limits", "limits:\n  maxConnections: 0\n  maxConnectionsPerAddres: 5\nroutes:" + validRoute,
			[]string{`routes.yaml:2: limits.maxConnections: "0" is not a whole number of at least 1`,
				"routes.yaml:3: limits.maxConnectionsPerAddres: unknown key; did you mean maxConnectionsPerAddress?"}},
		{"limits per address above the total", "limits: {maxConnections: 100, maxConnectionsPerAddress: 500}\nroutes:" + validRoute,
			[]string{"routes.yaml:1: limits.maxConnectionsPerAddress: 500 is more than maxConnections (100)"}},
		{"limits not a number", "limits: {maxConnections: many}\nroutes:" + validRoute,
			[]string{`routes.yaml:1: limits.maxConnections: "many" is not a whole number of at least 1`}},
		{"empty values", "routes:" + strings.NewReplacer("name: orders", `name: ""`, "clientId: buyer", "clientId: ''", "${SECRET}", "${EMPTY}").Replace(validRoute),
			[]string{"routes.yaml:2: routes[0].name: must not be empty", "routes.yaml:5: routes[0].clientId: must not be empty",
				"routes.yaml:6: routes[0].clientSecret: EMPTY is set but empty"}},
		// Messages quote the file, never what a variable holds: here the value of SECRET.
		{"variables stay unexpanded in messages", "unmatched: ${SECRET}\nroutes:" + strings.NewReplacer(
			"[api.supplier.example]", "[\"${SECRET}/x\"]", "clientId: buyer", "clientId: buyer\n    authStyle: ${SECRET}\n    header: \"${SECRET}:\"").Replace(validRoute),
			[]string{`routes.yaml:1: unmatched: "${SECRET}" is not one of forward | reject`,
				`routes.yaml:4: routes[0].hosts[0]: "${SECRET}/x": a host is a name with an optional port, without scheme or path`,
				`routes.yaml:7: routes[0].authStyle: "${SECRET}" is not one of basic-header | body | auto | private-key-jwt | client-secret-jwt | tls-client-auth`,
				`routes.yaml:8: routes[0].header: "${SECRET}:" is not a valid header name`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("routes.yaml", []byte(tt.yaml), LoadOptions{LookupEnv: env(map[string]string{"SECRET": "s3cr3t", "EMPTY": ""})})
			var ce *Error
			require.ErrorAs(t, err, &ce)
			for _, w := range tt.want {
				assert.Contains(t, ce.Problems, w)
			}
			assert.Len(t, ce.Problems, len(tt.want), "problems: %q", ce.Problems)
			assert.NotContains(t, err.Error(), "s3cr3t")
		})
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "routes.yaml"), LoadOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "routes.yaml: cannot read: no such file or directory")
}

func TestLoadConfigWithCA(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := mitm.WriteCA(filepath.Join(dir, "ca"))
	require.NoError(t, err)
	file := filepath.Join(dir, "routes.yaml")
	require.NoError(t, os.WriteFile(file, []byte("mitm: {caCert: ca/ca.crt, caKey: ca/ca.key}\nroutes:"+
		strings.Replace(validRoute, "${SECRET}", "x", 1)), 0o600))
	cfg, err := Load(file, LoadOptions{ParseCA: mitm.ParseCA})
	require.NoError(t, err)
	require.NotNil(t, cfg.MITM)
	assert.True(t, cfg.MITM.CA.Leaf.IsCA)
	assert.Equal(t, certFile, cfg.MITM.CertFile)

	// Every file the configuration came from is a source, so a reload sees it change.
	var paths []string
	for _, s := range cfg.Sources {
		paths = append(paths, s.Path)
	}
	assert.Equal(t, []string{file, certFile, keyFile}, paths)
	assert.False(t, Changed(cfg.Sources))
	require.NoError(t, os.WriteFile(certFile, []byte("replaced"), 0o600))
	assert.True(t, Changed(cfg.Sources))

	_, err = Load(file, LoadOptions{ParseCA: mitm.ParseCA})
	assert.ErrorContains(t, err, file+":1: mitm: CA "+certFile+" / "+keyFile+": tls: failed to find any PEM data in certificate input")
}

// The CA and a store URL are read by the packages that use them, through LoadOptions: a program that
// does not give config their readers gets a problem for the section, never a section left unchecked.
func TestASectionWithoutItsReaderIsRefused(t *testing.T) {
	dir := t.TempDir()
	_, _, err := mitm.WriteCA(filepath.Join(dir, "ca"))
	require.NoError(t, err)
	file := filepath.Join(dir, "routes.yaml")
	require.NoError(t, os.WriteFile(file, []byte("mitm: {caCert: ca/ca.crt, caKey: ca/ca.key}\nstore: redis://r:6379\nroutes:"+
		strings.Replace(validRoute, "${SECRET}", "x", 1)), 0o600))
	opts := LoadOptions{SecretKey: make([]byte, 32)}
	_, err = Load(file, opts)
	assert.EqualError(t, err, file+":1: mitm: this program reads no interception CA (config.LoadOptions.ParseCA is not set)\n"+
		file+":2: store: this program reads no store URL (config.LoadOptions.CheckStoreURL is not set)")
	opts.ParseCA, opts.CheckStoreURL = mitm.ParseCA, redisstore.CheckURL
	cfg, err := Load(file, opts)
	require.NoError(t, err)
	assert.True(t, cfg.MITM.CA.Leaf.IsCA)
	assert.Equal(t, "redis://r:6379", cfg.Store.URL)
}

// yaml.v3 reports a parser error at the line where the construct began, counted from 0; the loader names
// the line that breaks the document.
func TestYAMLSyntaxErrorsNameTheRightLine(t *testing.T) {
	tests := []struct {
		yaml string
		want string
	}{
		{"listen: a:1\nunmatched: forward\nroutes:\n  - hosts: [a.example, b\n    name: x\n", "routes.yaml:4: did not find expected ',' or ']'"},
		{"routes:\n  - name: x\n    hosts: [a]\n   clientId: c\n", "routes.yaml:4: did not find expected '-' indicator"},
		{"listen: a\nroutes:\n\t- name: x\n", "routes.yaml:3: found character that cannot start any token"},
		{"routes:\n  - hosts: [a,\n      b]\n    name: x\n   bad: indent\n", "routes.yaml:5: did not find expected '-' indicator"},
		{"a: 1\nroutes: [a, b", "routes.yaml:2: did not find expected ',' or ']'"},
	}
	for _, tt := range tests {
		_, err := Parse("routes.yaml", []byte(tt.yaml), LoadOptions{})
		var ce *Error
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, []string{tt.want}, ce.Problems)
	}
}

func TestDoubleDollarIsALiteral(t *testing.T) {
	cfg, err := Parse("routes.yaml", []byte("routes:"+strings.Replace(validRoute, "${SECRET}", "pa$${ss}${SECRET}", 1)),
		LoadOptions{LookupEnv: env(map[string]string{"SECRET": "-s"})})
	require.NoError(t, err)
	assert.Equal(t, "pa${ss}-s", cfg.Routes[0].Token.ClientSecret)
}

// validate -syntax-only checks what it can without the environment or any file.
func TestSyntaxOnly(t *testing.T) {
	yamlText := `admin: ${POD_IP}:9901
unmatched: ${UNMATCHED}
mitm: {caCert: /nowhere/ca.crt, caKey: /nowhere/ca.key}
routes:
  - name: a
    hosts: ["${HOST}", b.example]
    tokenUrl: ${TOKEN_URL}
    clientId: ${CLIENT_ID}
    clientSecretFile: /nowhere/secret
    authStyle: ${STYLE}
    defaultTTL: ${TTL}
  - name: b
    hosts: [c.example]
    tokenUrl: https://auth.example/token
    clientId: c
    clientSecret: aes256gcm:bm90IGNoZWNrZWQ=
`
	unset := LoadOptions{LookupEnv: env(nil), SyntaxOnly: true}
	_, err := Parse("routes.yaml", []byte(yamlText), unset)
	require.NoError(t, err, "no variable is needed and no file is read")

	broken := strings.NewReplacer("b.example]", "b.example/path]", "authStyle: ${STYLE}", "authStyle: basic", "name: b", "nme: b").Replace(yamlText)
	_, err = Parse("routes.yaml", []byte(broken), unset)
	var ce *Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, []string{
		`routes.yaml:6: routes[0].hosts[1]: "b.example/path": a host is a name with an optional port, without scheme or path`,
		`routes.yaml:10: routes[0].authStyle: "basic" is not one of basic-header | body | auto | private-key-jwt | client-secret-jwt | tls-client-auth`,
		`routes.yaml:12: routes[1].nme: unknown key; did you mean name?`,
	}, ce.Problems)
}

// A load that fails still says which files it read, so a reloader retries when one of them changes.
func TestFailedLoadNamesItsSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "routes.yaml")
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(file, []byte("routes:"+strings.Replace(validRoute, "clientSecret: ${SECRET}", "clientSecretFile: secret", 1)), 0o600))
	_, err := Load(file, LoadOptions{})
	var ce *Error
	require.ErrorAs(t, err, &ce)
	require.Len(t, ce.Sources, 2)
	assert.Equal(t, secret, ce.Sources[1].Path)
	assert.False(t, Changed(ce.Sources), "nothing changed yet")
	require.NoError(t, os.WriteFile(secret, []byte("s\n"), 0o600))
	assert.True(t, Changed(ce.Sources), "the missing secret file appeared")
	cfg, err := Load(file, LoadOptions{})
	require.NoError(t, err)
	assert.Equal(t, "s", cfg.Routes[0].Token.ClientSecret)
}

func TestAdminAddress(t *testing.T) {
	cfg, err := Parse("routes.yaml", []byte("admin: 127.0.0.1:9901\nroutes:"+validRoute), LoadOptions{LookupEnv: env(map[string]string{"SECRET": "s"})})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9901", cfg.Admin)
	_, err = Parse("routes.yaml", []byte("admin: 9901\nroutes:"+validRoute), LoadOptions{LookupEnv: env(map[string]string{"SECRET": "s"})})
	assert.EqualError(t, err, `routes.yaml:1: admin: "9901" is not host:port`)
}

func TestClients(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "billing.pw"), []byte("pw-from-file\n"), 0o600))
	cfg, err := Parse(filepath.Join(dir, "routes.yaml"), []byte(`listen: 0.0.0.0:3128
clients:
  - name: billing
    cidrs: [10.1.0.0/16, "fd00::/8", 192.168.7.9]
    proxyAuth: {username: billing, passwordFile: billing.pw}
    routes: [orders]
  - name: batch
    cidrs: [10.2.0.0/16]
  - name: laptop
    proxyAuth: {username: dev, password: "${DEV_PW}"}
routes:`+validRoute), LoadOptions{LookupEnv: env(map[string]string{"SECRET": "s", "DEV_PW": "pw"})})
	require.NoError(t, err)
	require.Len(t, cfg.Clients, 3)
	billing := cfg.Client("billing")
	assert.Equal(t, "billing", billing.Username)
	assert.Equal(t, "pw-from-file", billing.Password)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("192.168.7.9/32")},
		billing.CIDRs)
	assert.Equal(t, map[string]bool{"orders": true}, billing.Routes)
	assert.Nil(t, cfg.Client("batch").Routes, "every route")
	assert.Empty(t, cfg.Client("laptop").CIDRs, "any address")
	assert.Equal(t, "pw", cfg.Client("laptop").Password)

	_, err = Parse("routes.yaml", []byte("listen: 0.0.0.0:3128\nroutes:"+validRoute), LoadOptions{LookupEnv: env(map[string]string{"SECRET": "s"})})
	assert.EqualError(t, err, `routes.yaml:1: listen: "0.0.0.0:3128" is not a loopback address, so other machines could spend the routes' tokens: `+
		`add clients (who may use the proxy, by address or proxyAuth), or listen on 127.0.0.1`)
	for listen, shown := range map[string]string{`"[::]:3128"`: `"[::]:3128"`, `":3128"`: `":3128"`, "gateway.internal:3128": `"gateway.internal:3128"`,
		`"[::ffff:0.0.0.0]:3128"`: `"[::ffff:0.0.0.0]:3128"`, "${LISTEN}": `"${LISTEN}" (10.0.0.7:3128)`} {
		_, err = Parse("routes.yaml", []byte("listen: "+listen+"\nroutes:"+validRoute), LoadOptions{LookupEnv: env(map[string]string{"SECRET": "s", "LISTEN": "10.0.0.7:3128"})})
		assert.ErrorContains(t, err, `routes.yaml:1: listen: `+shown+` is not a loopback address`)
	}
	for _, loopback := range []string{"127.0.0.1:3128", "localhost:3128", "[::1]:3128", "127.0.0.2:3128", "[::ffff:127.0.0.1]:3128"} {
		_, err = Parse("routes.yaml", []byte("listen: \""+loopback+"\"\nroutes:"+validRoute), LoadOptions{LookupEnv: env(map[string]string{"SECRET": "s"})})
		assert.NoError(t, err, loopback)
	}

	_, err = Parse("routes.yaml", []byte(`listen: ":3128"
clients:
  - name: a
  - name: a
    cidrs: [10.0.0.0/33, nonsense]
    proxyAuth: {username: "x:y"}
    routes: [orders, nope]
routes:`+validRoute), LoadOptions{LookupEnv: env(map[string]string{"SECRET": "s"})})
	var ce *Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, []string{
		"routes.yaml:3: clients[0]: set cidrs, proxyAuth or both: a client must be told apart from everyone else",
		`routes.yaml:4: clients[1].name: "a" is already the name of clients[0]`,
		`routes.yaml:5: clients[1].cidrs[0]: "10.0.0.0/33" is not an address or CIDR like 10.1.0.0/16`,
		`routes.yaml:5: clients[1].cidrs[1]: "nonsense" is not an address or CIDR like 10.1.0.0/16`,
		"routes.yaml:6: clients[1].proxyAuth.username: a Basic username cannot contain ':'",
		"routes.yaml:6: clients[1].proxyAuth.password: required key is missing (or set passwordFile)",
		`routes.yaml:7: clients[1].routes[1]: "nope" is not the name of a route`,
	}, ce.Problems)
}
