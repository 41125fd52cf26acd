// Package mitm owns interception's certificates: the CA (tokenproxy ca, loading) and the leaf certificate
// of each intercepted host, made once and cached.
package mitm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// LoadCA reads the interception CA's certificate and key (PEM files).
func LoadCA(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	return ParseCA(certPEM, keyPEM)
}

// ParseCA reads the interception CA from its PEM certificate and key; the certificate must be a CA.
func ParseCA(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	ca, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("cannot parse the CA certificate: %v", err)
	}
	if !leaf.IsCA {
		return nil, errors.New("not a CA certificate (basicConstraints CA:TRUE is missing)")
	}
	ca.Leaf = leaf
	return &ca, nil
}

// SameCA reports whether two CAs have the same certificate and key.
func SameCA(a, b *tls.Certificate) bool {
	if a == nil || b == nil {
		return a == b
	}
	ka, ok := a.PrivateKey.(interface{ Equal(crypto.PrivateKey) bool })
	return ok && bytes.Equal(a.Certificate[0], b.Certificate[0]) && ka.Equal(b.PrivateKey)
}

// WriteCA creates an ECDSA P-256 CA for interception as dir/ca.crt and dir/ca.key (mode 0600).
// ECDSA because each intercepted host needs a leaf signed by it: 0.2 ms per leaf instead of 56 ms with RSA.
func WriteCA(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "tokenproxy interception CA", Organization: []string{"tokenproxy"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if _, err := os.Stat(keyFile); err == nil {
		return "", "", fmt.Errorf("%s exists already; remove it first to make a new CA", keyFile)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// Leaves makes and keeps the leaf certificates one CA signs for intercepted hosts, generating each host's
// once even when many connections open at once. It holds at most max hosts; when full, an arbitrary entry
// makes room (leaves are cheap with ECDSA).
type Leaves struct {
	ca      *tls.Certificate
	sign    func(host string) (*tls.Certificate, error)
	mu      sync.Mutex
	certs   map[string]*tls.Certificate
	max     int
	flights singleflight.Group
}

// NewLeaves returns an empty cache of leaves signed by ca.
func NewLeaves(ca *tls.Certificate, max int) *Leaves {
	c := &Leaves{ca: ca, certs: map[string]*tls.Certificate{}, max: max}
	c.sign = c.signLeaf
	return c
}

// CA returns the certificate that signs the leaves.
func (c *Leaves) CA() *tls.Certificate { return c.ca }

// Len is the number of hosts with a cached leaf.
func (c *Leaves) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.certs)
}

// For returns the leaf certificate for host (a name or an IP address, without port).
func (c *Leaves) For(host string) (*tls.Certificate, error) {
	if cert := c.cached(host); cert != nil {
		return cert, nil
	}
	v, err, _ := c.flights.Do(host, func() (any, error) {
		// A caller that arrives just after another's flight ended finds its certificate here.
		if cert := c.cached(host); cert != nil {
			return cert, nil
		}
		cert, err := c.sign(host)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.certs) >= c.max {
			for k := range c.certs {
				delete(c.certs, k)
				break
			}
		}
		c.certs[host] = cert
		return cert, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*tls.Certificate), nil
}

// cached returns host's leaf unless it is missing or close to its end (leaves are signed for a year).
func (c *Leaves) cached(host string) *tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cert := c.certs[host]; cert != nil && (cert.Leaf == nil || time.Until(cert.Leaf.NotAfter) > 24*time.Hour) {
		return cert
	}
	return nil
}

// signLeaf makes a leaf for host valid for a year (from an hour ago, for clocks slightly behind).
func (c *Leaves) signLeaf(host string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host, Organization: []string{"tokenproxy"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca.Leaf, &key.PublicKey, c.ca.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("mitm: signing a certificate for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, c.ca.Certificate[0]}, PrivateKey: key, Leaf: leaf}, nil
}
