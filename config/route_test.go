package config

import (
	"context"
	"crypto/ecdsa"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/secrets"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

func TestParseConfigIssue3Keys(t *testing.T) {
	dir := t.TempDir()
	client := testkit.SelfSigned(t, "c")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "client.key"), client.KeyPEM(t), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "client.crt"), client.PEM, 0o600))
	cfg, err := Parse(filepath.Join(dir, "routes.yaml"), []byte(`
routes:
  - name: jwt
    hosts: [a.example]
    issuer: https://login.example/tenant
    clientId: c
    authStyle: private-key-jwt
    clientKeyFile: client.key
    clientKeyId: k1
    params: {audience: "https://api.example", resource: "${RES}"}
    tokenHeaders: {X-Gateway-Key: "${GK}"}
    headers: {X-Api-Key: ak}
    header: ${HEADER}
    prefix: "${PREFIX}"
    expiresPath: meta.ttl
    expiresAtPath: meta.exp
    defaultTTL: 15m
    retryOn401: false
    retryBodyLimit: 64KiB
  - name: mtls
    hosts: [b.example]
    tokenUrl: https://login.example/token
    clientId: c
    authStyle: tls-client-auth
    clientCertFile: client.crt
    clientKeyFile: client.key
`), LoadOptions{LookupEnv: env(map[string]string{"RES": "orders", "GK": "gk", "HEADER": "X-Token", "PREFIX": ""})})
	require.NoError(t, err)
	mtls := cfg.Routes[1].Token
	require.NotNil(t, mtls.ClientCert, "the client certificate and key were loaded")
	assert.Equal(t, client.Leaf.Raw, mtls.ClientCert.Certificate[0])
	r := cfg.Routes[0]
	assert.Equal(t, "https://login.example/tenant", r.Issuer)
	assert.Equal(t, tokensource.AuthPrivateKeyJWT, r.Token.AuthStyle)
	assert.True(t, client.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(r.Token.ClientKey.Public()), "the key from client.key")
	assert.Equal(t, "k1", r.Token.ClientKeyID)
	assert.Equal(t, map[string]string{"audience": "https://api.example", "resource": "orders"}, r.Token.Params)
	assert.Equal(t, map[string]string{"X-Gateway-Key": "gk"}, r.Token.TokenHeaders)
	assert.Equal(t, map[string]string{"X-Api-Key": "ak"}, r.Headers)
	assert.Equal(t, "X-Token", r.Header)
	assert.Equal(t, "", r.Prefix)
	assert.Equal(t, "meta.ttl", r.Token.ExpiresPath)
	assert.Equal(t, "meta.exp", r.Token.ExpiresAtPath)
	assert.Equal(t, 15*time.Minute, r.Token.DefaultTTL)
	assert.False(t, r.RetryOn401)
	assert.EqualValues(t, 64<<10, r.RetryBodyLimit)

	cfg, err = Parse("routes.yaml", []byte("routes:"+validRoute), LoadOptions{LookupEnv: env(map[string]string{"SECRET": "x"})})
	require.NoError(t, err)
	r = cfg.Routes[0]
	assert.Equal(t, "Authorization", r.Header)
	assert.Equal(t, "Bearer ", r.Prefix)
	assert.True(t, r.RetryOn401)
	assert.EqualValues(t, 1<<20, r.RetryBodyLimit)
}

func TestEncryptedSecrets(t *testing.T) {
	b64, err := secrets.NewKey()
	require.NoError(t, err)
	key, err := secrets.ParseKey(b64)
	require.NoError(t, err)
	value, err := secrets.Encrypt(key, "decrypted-secret")
	require.NoError(t, err)
	yaml := []byte("routes:" + strings.Replace(validRoute, "${SECRET}", value, 1))

	cfg, err := Parse("routes.yaml", yaml, LoadOptions{SecretKey: key})
	require.NoError(t, err)
	assert.Equal(t, "decrypted-secret", cfg.Routes[0].Token.ClientSecret)

	cfg, err = Parse("routes.yaml", yaml, LoadOptions{LookupEnv: env(map[string]string{secrets.KeyEnv: b64})})
	require.NoError(t, err, "the key is read from TOKENPROXY_SECRET_KEY")
	assert.Equal(t, "decrypted-secret", cfg.Routes[0].Token.ClientSecret)

	other, err := secrets.NewKey()
	require.NoError(t, err)
	otherKey, err := secrets.ParseKey(other)
	require.NoError(t, err)
	_, err = Parse("routes.yaml", yaml, LoadOptions{SecretKey: otherKey})
	assert.EqualError(t, err, `routes.yaml:6: routes[0].clientSecret: route "orders": the encrypted secret does not decrypt with this key (a different key, or a damaged value)`)

	_, err = Parse("routes.yaml", yaml, LoadOptions{LookupEnv: env(nil)})
	assert.EqualError(t, err, `routes.yaml:6: routes[0].clientSecret: route "orders": the encrypted secret needs a key: set TOKENPROXY_SECRET_KEY or -secret-key-file`)
	assert.NotContains(t, err.Error(), "decrypted-secret")
}

func TestParseConfigIssue3Errors(t *testing.T) {
	tests := []struct {
		name, extra string
		want        []string
	}{
		{"issuer and tokenUrl", "    issuer: https://login.example\n", []string{"routes.yaml:7: routes[0].issuer: set tokenUrl or issuer, not both"}},
		{"private-key-jwt without key", "    authStyle: private-key-jwt\n", []string{"routes.yaml:2: routes[0].clientKeyFile: required for authStyle private-key-jwt"}},
		{"tls-client-auth without cert", "    authStyle: tls-client-auth\n", []string{"routes.yaml:2: routes[0].clientCertFile: clientCertFile and clientKeyFile are required for authStyle tls-client-auth"}},
		{"key file with a secret style", "    clientKeyFile: k.pem\n", []string{"routes.yaml:7: routes[0].authStyle: clientKeyFile and clientCertFile are used only with private-key-jwt or tls-client-auth"}},
		{"unreadable key", "    authStyle: private-key-jwt\n    clientKeyFile: /nonexistent/k.pem\n", []string{"routes.yaml:8: routes[0].clientKeyFile: cannot read /nonexistent/k.pem: no such file or directory"}},
		{"bad ttl", "    defaultTTL: soon\n", []string{`routes.yaml:7: routes[0].defaultTTL: "soon" is not a positive duration like 90s, 15m or 1h`}},
		{"bad size", "    retryBodyLimit: lots\n", []string{`routes.yaml:7: routes[0].retryBodyLimit: "lots" is not a size like 65536, 512KiB or 1MiB`}},
		{"hop-by-hop header", "    headers: {Connection: close}\n", []string{`routes.yaml:7: routes[0].headers.Connection: "Connection" is a hop-by-hop header and is never forwarded`}},
		{"bad header name", "    header: \"X Token\"\n", []string{`routes.yaml:7: routes[0].header: "X Token" is not a valid header name`}},
		{"bad expiresPath", "    expiresPath: a..b\n", []string{`routes.yaml:7: routes[0].expiresPath: "a..b" is not a dot path like access_token or data.token`}},
		{"params not a map", "    params: [a]\n", []string{"routes.yaml:7: routes[0].params: must be a mapping of names to values"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("routes.yaml", []byte("routes:"+validRoute+tt.extra), LoadOptions{LookupEnv: env(map[string]string{"SECRET": "s"})})
			var ce *Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.want, ce.Problems)
		})
	}
}

func TestResolveDiscoversConcurrentlyIntoACopy(t *testing.T) {
	var tokenURL string
	arrived := make(chan struct{}, 2)
	both := make(chan struct{})
	var once sync.Once
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/one/.well-known/openid-configuration", "/two/.well-known/openid-configuration":
			// Each discovery answers only once both have arrived: done one after another, they would not.
			arrived <- struct{}{}
			if len(arrived) == 2 {
				once.Do(func() { close(both) })
			}
			select {
			case <-both:
			case <-time.After(5 * time.Second):
				http.Error(w, "the other discovery never came", http.StatusServiceUnavailable)
				return
			}
			issuer := strings.TrimSuffix(r.URL.Path, "/.well-known/openid-configuration")
			_, _ = io.WriteString(w, `{"issuer":"`+"http://"+r.Host+issuer+`","token_endpoint":"`+tokenURL+issuer+`"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer as.Close()
	tokenURL = as.URL + "/oauth2/token"
	cfg, err := Parse("routes.yaml", []byte(`
routes:
  - {name: one, hosts: [one.example], issuer: "`+as.URL+`/one", clientId: c, clientSecret: s}
  - {name: two, hosts: [two.example], issuer: "`+as.URL+`/two", clientId: c, clientSecret: s}
  - {name: fixed, hosts: [fixed.example], tokenUrl: "`+as.URL+`/fixed", clientId: c, clientSecret: s}
`), LoadOptions{})
	require.NoError(t, err)
	resolved, err := Resolve(context.Background(), cfg, nil, nil)
	require.NoError(t, err)
	assert.Equal(t, tokenURL+"/one", resolved.Routes[0].Token.TokenURL)
	assert.Equal(t, tokenURL+"/two", resolved.Routes[1].Token.TokenURL)
	assert.Same(t, cfg.Routes[2], resolved.Routes[2], "a route without issuer is shared, not copied")
	assert.Same(t, resolved.Routes[1], resolved.MatchString("two.example", "443"), "the copy matches its own routes")
	assert.Empty(t, cfg.Routes[0].Token.TokenURL, "the loaded configuration is never changed")
	assert.Same(t, cfg.Routes[0], cfg.MatchString("one.example", "443"))

	cfg, err = Parse("routes.yaml", []byte(`
routes:
  - {name: d, hosts: [a.example], issuer: "`+as.URL+`/nothing", clientId: c, clientSecret: s}
`), LoadOptions{})
	require.NoError(t, err)
	_, err = Resolve(context.Background(), cfg, nil, nil)
	var ce *Error
	require.ErrorAs(t, err, &ce)
	require.Len(t, ce.Problems, 1)
	assert.Contains(t, ce.Problems[0], `routes.yaml:3: routes[0].issuer: tokensource: issuer `+as.URL+`/nothing publishes no token endpoint`)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Resolve(ctx, cfg, nil, nil)
	assert.ErrorContains(t, err, "context canceled", "resolution ends with its context")

	// What a configuration in service resolved is kept for an unchanged issuer: no network needed.
	again, err := Resolve(ctx, cfg, nil, &Config{Routes: []*Route{{Name: "d", Issuer: as.URL + "/nothing",
		Token: tokensource.Config{TokenURL: "https://kept.example/token"}}}})
	require.NoError(t, err, "the cancelled context is never used")
	assert.Equal(t, "https://kept.example/token", again.Routes[0].Token.TokenURL)
	_, err = Resolve(ctx, cfg, nil, &Config{Routes: []*Route{{Name: "d", Issuer: as.URL + "/other",
		Token: tokensource.Config{TokenURL: "https://kept.example/token"}}}})
	assert.Error(t, err, "another issuer is asked")
}

// params may not set a field tokenproxy sends itself: the route's client, secret, grant or scope would be
// replaced in the token request, as would the fields of the grants to come.
func TestParamsMayNotSetTheFieldsTokenproxySends(t *testing.T) {
	reserved := map[string]string{
		"grant_type":            "tokenproxy sends it from grantType",
		"client_id":             "tokenproxy sends it from clientId",
		"client_secret":         "tokenproxy sends it from clientSecret or clientSecretFile",
		"client_assertion":      "tokenproxy sends it with authStyle private-key-jwt or client-secret-jwt",
		"client_assertion_type": "tokenproxy sends it with authStyle private-key-jwt or client-secret-jwt",
		"scope":                 "tokenproxy sends it from scope",
		"assertion":             "it is reserved for the jwt-bearer grant (RFC 7523)",
		"subject_token":         "it is reserved for the token-exchange grant (RFC 8693)",
		"subject_token_type":    "it is reserved for the token-exchange grant (RFC 8693)",
		"actor_token":           "it is reserved for the token-exchange grant (RFC 8693)",
		"actor_token_type":      "it is reserved for the token-exchange grant (RFC 8693)",
		"requested_token_type":  "it is reserved for the token-exchange grant (RFC 8693)",
	}
	for name, why := range reserved {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("routes.yaml", []byte("routes:"+validRoute+"    params:\n      audience: a\n      "+name+": other-value\n"),
				LoadOptions{LookupEnv: env(map[string]string{"SECRET": "s"})})
			var ce *Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, []string{"routes.yaml:9: routes[0].params." + name + ": params may not set " + name + ": " + why}, ce.Problems)
			assert.NotContains(t, err.Error(), "other-value")
		})
	}

	// audience and resource are no field of any style or grant tokenproxy sends: params is where they go.
	cfg, err := Parse("routes.yaml", []byte("routes:"+validRoute+"    params: {audience: a, resource: r}\n"),
		LoadOptions{LookupEnv: env(map[string]string{"SECRET": "s"})})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"audience": "a", "resource": "r"}, cfg.Routes[0].Token.Params)

	// A field in other capitals is no field a supplier is owed either.
	_, err = Parse("routes.yaml", []byte("routes:"+validRoute+"    params: {Client_Secret: c}\n"),
		LoadOptions{LookupEnv: env(map[string]string{"SECRET": "s"})})
	assert.EqualError(t, err, "routes.yaml:7: routes[0].params.Client_Secret: params may not set Client_Secret: tokenproxy sends it from clientSecret or clientSecretFile")
}
