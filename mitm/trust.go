package mitm

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"software.sslmate.com/src/go-pkcs12"
)

// TrustStorePassword is the password of truststore.p12: the JDK's default for its own cacerts. The store
// holds only public certificates, so the password protects nothing.
const TrustStorePassword = "changeit"

// systemBundles are where Linux distributions keep their trusted roots, in the order Go's crypto/x509
// looks; a JDK packaged by the distribution builds its cacerts from the same file.
var systemBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Gentoo, Arch
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL 6
	"/etc/ssl/ca-bundle.pem",                            // openSUSE
	"/etc/pki/tls/cacert.pem",                           // OpenELEC
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
	"/etc/ssl/cert.pem",                                 // Alpine, macOS
}

// SystemRoots returns the trusted roots of this machine as PEM, and the file they came from:
// $SSL_CERT_FILE when set, else the distribution's bundle.
func SystemRoots() ([]byte, string, error) {
	files := systemBundles
	if f := os.Getenv("SSL_CERT_FILE"); f != "" {
		files = []string{f}
	}
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			return b, f, nil
		}
	}
	return nil, "", fmt.Errorf("no bundle of trusted roots found (looked at %s); name one with -roots FILE", strings.Join(files, ", "))
}

// WriteTrust writes the files an app needs to trust the interception CA without losing the roots it
// trusts already: dir/bundle.pem (roots then the CA, for SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,
// which replace the default roots) and dir/truststore.p12 (the same for Java, password changeit). It returns
// how many roots each holds besides the CA.
func WriteTrust(dir string, ca *x509.Certificate, rootsPEM []byte) (bundleFile, storeFile string, roots int, err error) {
	certs, err := parseCertificates(rootsPEM)
	if err != nil {
		return "", "", 0, err
	}
	var bundle bytes.Buffer
	entries := make([]pkcs12.TrustStoreEntry, 0, len(certs)+1)
	aliases := map[string]int{}
	for _, c := range certs {
		if bytes.Equal(c.Raw, ca.Raw) {
			continue
		}
		_ = pem.Encode(&bundle, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		entries = append(entries, pkcs12.TrustStoreEntry{Cert: c, FriendlyName: alias(c, aliases)})
	}
	roots = len(entries)
	_ = pem.Encode(&bundle, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	entries = append(entries, pkcs12.TrustStoreEntry{Cert: ca, FriendlyName: "tokenproxy-interception-ca"})
	// LegacyDES so that Java 8 and 11 read it too; the store holds only public certificates.
	store, err := pkcs12.LegacyDES.EncodeTrustStoreEntries(entries, TrustStorePassword)
	if err != nil {
		return "", "", 0, fmt.Errorf("writing the Java trust store: %w", err)
	}
	bundleFile, storeFile = filepath.Join(dir, "bundle.pem"), filepath.Join(dir, "truststore.p12")
	if err := os.WriteFile(bundleFile, bundle.Bytes(), 0o644); err != nil {
		return "", "", 0, err
	}
	if err := os.WriteFile(storeFile, store, 0o644); err != nil {
		return "", "", 0, err
	}
	return bundleFile, storeFile, roots, nil
}

// parseCertificates reads every CERTIFICATE block of a PEM bundle.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			continue // a bundle may hold a certificate Go cannot parse; the others still count
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("the roots bundle holds no certificate")
	}
	return certs, nil
}

// alias names a root in the Java trust store after its subject, unique within the store.
func alias(c *x509.Certificate, used map[string]int) string {
	name := strings.ToLower(c.Subject.CommonName)
	if name == "" && len(c.Subject.Organization) > 0 {
		name = strings.ToLower(c.Subject.Organization[0])
	}
	if name == "" {
		name = "root"
	}
	used[name]++
	if n := used[name]; n > 1 {
		name = fmt.Sprintf("%s-%d", name, n)
	}
	return name
}
