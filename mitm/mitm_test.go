package mitm

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"software.sslmate.com/src/go-pkcs12"
)

func TestWriteCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	certFile, keyFile, err := WriteCA(dir)
	require.NoError(t, err)
	info, err := os.Stat(keyFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	ca, err := LoadCA(certFile, keyFile)
	require.NoError(t, err)
	assert.True(t, ca.Leaf.IsCA)
	assert.Equal(t, x509.ECDSA, ca.Leaf.PublicKeyAlgorithm)

	_, _, err = WriteCA(dir)
	assert.ErrorContains(t, err, "exists already", "an existing CA key is never overwritten")
}

func TestLeavesAreSignedByTheCAAndMadeOncePerHost(t *testing.T) {
	certFile, keyFile, err := WriteCA(t.TempDir())
	require.NoError(t, err)
	ca, err := LoadCA(certFile, keyFile)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	leaves := NewLeaves(ca, 2)

	// Many connections at once for one host share one certificate.
	const callers = 50
	got := make([]*tls.Certificate, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = leaves.For("api.example")
		}()
	}
	wg.Wait()
	for _, c := range got {
		assert.Same(t, got[0], c)
	}
	_, err = got[0].Leaf.Verify(x509.VerifyOptions{DNSName: "api.example", Roots: roots})
	assert.NoError(t, err)

	ip, err := leaves.For("127.0.0.1")
	require.NoError(t, err)
	_, err = ip.Leaf.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: roots})
	assert.NoError(t, err, "an IP address gets an IP SAN")

	_, err = leaves.For("third.example")
	require.NoError(t, err)
	assert.Equal(t, 2, leaves.Len(), "bounded")
}

func TestLeavesSignOncePerHostUnderConcurrency(t *testing.T) {
	const callers = 200
	leaves := NewLeaves(nil, 2)
	var entered, signed atomic.Int64
	allIn := make(chan struct{})
	leaves.sign = func(string) (*tls.Certificate, error) {
		signed.Add(1)
		// Slow like a real signature: the certificate is done only once every caller has asked for it.
		select {
		case <-allIn:
		case <-time.After(10 * time.Second):
			return nil, errors.New("not every caller arrived")
		}
		return &tls.Certificate{}, nil
	}
	certs := make([]*tls.Certificate, callers)
	var wg sync.WaitGroup
	for i := range certs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if entered.Add(1) == callers {
				close(allIn)
			}
			c, err := leaves.For("supplier.test")
			assert.NoError(t, err)
			certs[i] = c
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 1, signed.Load(), "200 concurrent connections, one certificate")
	for _, c := range certs {
		assert.Same(t, certs[0], c)
	}

	leaves.sign = func(string) (*tls.Certificate, error) { return nil, errors.New("boom") }
	_, err := leaves.For("broken.test")
	assert.EqualError(t, err, "boom")
	assert.Equal(t, 1, leaves.Len(), "a failure is not cached")
}

func TestWriteTrustKeepsTheRootsAndAddsTheCA(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := WriteCA(dir)
	require.NoError(t, err)
	ca, err := LoadCA(certFile, keyFile)
	require.NoError(t, err)
	var roots []byte
	var rootCerts []*x509.Certificate
	for range 3 {
		other, _, err := WriteCA(t.TempDir())
		require.NoError(t, err)
		b, err := os.ReadFile(other)
		require.NoError(t, err)
		roots = append(roots, b...)
		c, err := LoadCA(other, filepath.Join(filepath.Dir(other), "ca.key"))
		require.NoError(t, err)
		rootCerts = append(rootCerts, c.Leaf)
	}
	roots = append(roots, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")...)
	bundle, store, n, err := WriteTrust(dir, ca.Leaf, roots)
	require.NoError(t, err)
	assert.Equal(t, 3, n, "a certificate that does not parse is left out")

	pemBytes, err := os.ReadFile(bundle)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pemBytes))
	inBundle, err := parseCertificates(pemBytes)
	require.NoError(t, err)
	require.Len(t, inBundle, 4)
	assert.Equal(t, ca.Leaf.Raw, inBundle[3].Raw, "the CA comes last")

	p12, err := os.ReadFile(store)
	require.NoError(t, err)
	stored, err := pkcs12.DecodeTrustStore(p12, TrustStorePassword)
	require.NoError(t, err)
	require.Len(t, stored, 4)
	for i, c := range rootCerts {
		assert.Equal(t, c.Raw, stored[i].Raw)
	}
	assert.Equal(t, ca.Leaf.Raw, stored[3].Raw)

	_, _, _, err = WriteTrust(dir, ca.Leaf, []byte("nothing"))
	assert.EqualError(t, err, "the roots bundle holds no certificate")
}
