// Package mitm owns interception's certificates: the CA (tokenproxy ca, loading) and the leaf certificate
// of each intercepted host, made once and cached.
package mitm

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tokenproxy/tokenproxy/internal/certgen"
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

// WriteCA creates an ECDSA P-256 CA for interception as dir/ca.crt and dir/ca.key (mode 0600), valid for
// ten years. ECDSA because each intercepted host needs a leaf signed by it (see certgen).
func WriteCA(dir string) (certFile, keyFile string, err error) {
	ca, err := certgen.New(certgen.Spec{CommonName: "tokenproxy interception CA", Organization: []string{"tokenproxy"},
		CA: true, Valid: 10 * 365 * 24 * time.Hour}, nil)
	if err != nil {
		return "", "", err
	}
	keyPEM, err := certgen.KeyPEM(ca)
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
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(certFile, certgen.CertPEM(ca), 0o644); err != nil {
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

// signLeaf makes a leaf for host valid for a year, sent with the CA's certificate.
func (c *Leaves) signLeaf(host string) (*tls.Certificate, error) {
	leaf, err := certgen.New(certgen.Spec{CommonName: host, Organization: []string{"tokenproxy"}, Hosts: []string{host},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, Valid: 365 * 24 * time.Hour}, c.ca)
	if err != nil {
		return nil, fmt.Errorf("mitm: signing a certificate for %s: %w", host, err)
	}
	leaf.Certificate = append(leaf.Certificate, c.ca.Certificate[0])
	return leaf, nil
}
