package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A required key that is missing because it was mistyped is one problem, the unknown key that suggests it;
// a required key missing for no such reason is still reported.
func TestAMistypedRequiredKeyIsReportedOnce(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"name", "routes:" + strings.Replace(validRoute, "- name:", "- nme:", 1),
			[]string{"routes.yaml:2: routes[0].nme: unknown key; did you mean name?"}},
		{"clientId", "routes:" + strings.Replace(validRoute, "clientId:", "clientld:", 1),
			[]string{"routes.yaml:5: routes[0].clientld: unknown key; did you mean clientId?"}},
		{"tokenUrl or issuer", "routes:" + strings.Replace(validRoute, "tokenUrl:", "tokenUri:", 1),
			[]string{"routes.yaml:4: routes[0].tokenUri: unknown key; did you mean tokenUrl?"}},
		{"clientSecret or clientSecretFile", "routes:" + strings.Replace(validRoute, "clientSecret:", "clientSecrt:", 1),
			[]string{"routes.yaml:6: routes[0].clientSecrt: unknown key; did you mean clientSecret?"}},
		{"clientKeyFile", "routes:" + validRoute + "    authStyle: private-key-jwt\n    clientKeyFle: k.pem\n",
			[]string{"routes.yaml:8: routes[0].clientKeyFle: unknown key; did you mean clientKeyFile?"}},
		{"clientCertFile", "routes:" + validRoute + "    authStyle: tls-client-auth\n    clientKeyFile: /nonexistent/k.pem\n    clientCertFil: c.pem\n",
			[]string{"routes.yaml:9: routes[0].clientCertFil: unknown key; did you mean clientCertFile?"}},
		{"mitm caKey", "mitm:\n  caCert: /nonexistent/ca.crt\n  cakey: /nonexistent/ca.key\nroutes:" + validRoute,
			[]string{"routes.yaml:2: mitm.caCert: cannot read /nonexistent/ca.crt: no such file or directory",
				"routes.yaml:3: mitm.cakey: unknown key; did you mean caKey?"}},
		{"routes", "rotes:" + validRoute, []string{"routes.yaml:1: rotes: unknown key; did you mean routes?"}},
		{"clients", "clients:\n  - {nam: a, cidr: [10.0.0.0/8]}\n  - {name: b, proxyAuth: {username: u, pasword: p}}\nroutes:" + validRoute,
			[]string{"routes.yaml:2: clients[0].nam: unknown key; did you mean name?",
				"routes.yaml:2: clients[0].cidr: unknown key; did you mean cidrs?",
				"routes.yaml:3: clients[1].proxyAuth.pasword: unknown key; did you mean password?"}},
		// Another required key missing in the same mapping is still named: only the one suggested is implied.
		{"another key missing too", "routes:\n  - name: a\n    host: [a.example]\n    tokenUrl: https://auth.example/t\n    clientSecret: s\n",
			[]string{"routes.yaml:2: routes[0].clientId: required key is missing",
				"routes.yaml:3: routes[0].host: unknown key; did you mean hosts?"}},
		// A suggestion in one route implies nothing for another.
		{"in another route", "routes:" + strings.Replace(validRoute, "clientId:", "clientld:", 1) + "  - {name: b, hosts: [b.example], tokenUrl: https://auth.example/t, clientSecret: s}\n",
			[]string{"routes.yaml:5: routes[0].clientld: unknown key; did you mean clientId?",
				"routes.yaml:7: routes[1].clientId: required key is missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("routes.yaml", []byte(tt.yaml), LoadOptions{LookupEnv: env(map[string]string{"SECRET": "s"})})
			var ce *Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.want, ce.Problems)
		})
	}
}
