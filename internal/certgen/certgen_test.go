package certgen

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A leaf verifies against the CA that signed it, for its names and addresses only; the CA signs leaves
// and no other CA.
func TestALeafVerifiesAgainstItsCA(t *testing.T) {
	ca, err := New(Spec{CommonName: "test CA", CA: true, Valid: time.Hour}, nil)
	require.NoError(t, err)
	assert.True(t, ca.Leaf.IsCA)
	assert.True(t, ca.Leaf.MaxPathLenZero)
	leaf, err := New(Spec{CommonName: "supplier.test", Hosts: []string{"supplier.test", "127.0.0.2"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, Valid: time.Hour}, ca)
	require.NoError(t, err)
	assert.False(t, leaf.Leaf.IsCA)
	assert.Len(t, leaf.Certificate, 1, "the chain is the caller's to add")

	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	for host, ok := range map[string]bool{"supplier.test": true, "127.0.0.2": true, "other.test": false, "127.0.0.1": false} {
		_, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host})
		assert.Equal(t, ok, err == nil, "%s: %v", host, err)
	}
	assert.WithinDuration(t, time.Now().Add(-time.Hour), leaf.Leaf.NotBefore, time.Minute, "an hour back, for clocks behind")

	// Its PEM forms read back as the same certificate and key.
	keyPEM, err := KeyPEM(leaf)
	require.NoError(t, err)
	back, err := tls.X509KeyPair(CertPEM(leaf), keyPEM)
	require.NoError(t, err)
	assert.Equal(t, leaf.Certificate[0], back.Certificate[0])

	_, err = New(Spec{CommonName: "x", Valid: time.Hour}, &tls.Certificate{Certificate: ca.Certificate, PrivateKey: ca.PrivateKey})
	assert.ErrorContains(t, err, "not parsed", "a parent without Leaf")
}
