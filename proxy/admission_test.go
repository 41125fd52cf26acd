package proxy

import (
	"crypto/sha256"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
)

// Admission reads a client as the clients list wrote it: credentials compared as sums, addresses by
// prefix (IPv4-mapped ones too), routes by name.
func TestAdmissionReadsClientsAsTheListSays(t *testing.T) {
	cfg, err := config.Parse("routes.yaml", []byte(`listen: 0.0.0.0:3128
clients:
  - name: billing
    cidrs: [10.1.0.0/16, "fd00::/8", 192.168.7.9]
    proxyAuth: {username: billing, password: pw-billing}
    routes: [orders]
  - name: batch
    cidrs: [10.2.0.0/16]
  - name: laptop
    proxyAuth: {username: dev, password: pw}
routes:
  - {name: orders, hosts: [a.example], tokenUrl: "https://auth.example/t", clientId: c, clientSecret: s}
`), config.LoadOptions{})
	require.NoError(t, err)
	snap := &snapshot{clients: admittedClients(cfg.Clients)}
	billing := snap.client("billing")
	require.NotNil(t, billing)
	sum := func(s string) *[32]byte { b := sha256.Sum256([]byte(s)); return &b }
	named, ok := billing.credentials(sum("billing"), sum("pw-billing"))
	assert.True(t, named && ok)
	named, ok = billing.credentials(sum("billing"), sum("guess"))
	assert.True(t, named && !ok)
	named, _ = snap.client("batch").credentials(sum(""), sum(""))
	assert.False(t, named, "a client without proxyAuth is named by no user, not even an empty one")
	assert.True(t, billing.fromAddress(netip.MustParseAddr("10.1.200.3")))
	assert.True(t, billing.fromAddress(netip.MustParseAddr("::ffff:10.1.0.1")), "IPv4-mapped addresses")
	assert.True(t, billing.fromAddress(netip.MustParseAddr("192.168.7.9")))
	assert.False(t, billing.fromAddress(netip.MustParseAddr("192.168.7.10")))
	assert.True(t, billing.mayUse("orders"))
	assert.False(t, billing.mayUse("other"))
	assert.True(t, snap.client("batch").mayUse("anything"))
	assert.True(t, snap.client("laptop").fromAddress(netip.MustParseAddr("203.0.113.9")), "no cidrs: any address")
	assert.Nil(t, snap.client("nobody"))
}
