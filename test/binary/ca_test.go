package binary

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBinaryWritesCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	out, err := exec.Command(binary, "ca", "-out", dir).CombinedOutput()
	require.NoError(t, err, string(out))
	key, err := os.Stat(filepath.Join(dir, "ca.key"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), key.Mode().Perm())
	pemBytes, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	require.NoError(t, err)
	block, _ := pem.Decode(pemBytes)
	require.NotNil(t, block)
	ca, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	assert.True(t, ca.IsCA)
	assert.Equal(t, x509.ECDSA, ca.PublicKeyAlgorithm)

	for _, f := range []string{"bundle.pem", "truststore.p12"} {
		info, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, f)
		assert.Equal(t, os.FileMode(0o644), info.Mode().Perm(), f)
	}
	if keytool, err := exec.LookPath("keytool"); err == nil {
		out, err := exec.Command(keytool, "-list", "-keystore", filepath.Join(dir, "truststore.p12"), "-storepass", "changeit").CombinedOutput()
		require.NoError(t, err, string(out))
		assert.Contains(t, string(out), "tokenproxy-interception-ca")
		var entries int
		_, err = fmt.Sscanf(string(out[strings.Index(string(out), "Your keystore contains"):]), "Your keystore contains %d entries", &entries)
		require.NoError(t, err)
		assert.Greater(t, entries, 100, "Java keeps the system's roots: the keytool recipe of old left it one")
	}

	out, err = exec.Command(binary, "ca").CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "-out DIR is required")
}
