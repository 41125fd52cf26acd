package secrets

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoundTripAndWrongKey(t *testing.T) {
	b64, err := NewKey()
	require.NoError(t, err)
	key, err := ParseKey(b64)
	require.NoError(t, err)

	value, err := Encrypt(key, "s3cr3t with spaces & ünïcode")
	require.NoError(t, err)
	assert.True(t, IsEncrypted(value))
	assert.NotContains(t, value, "s3cr3t")
	plain, err := Decrypt(key, value)
	require.NoError(t, err)
	assert.Equal(t, "s3cr3t with spaces & ünïcode", plain)

	again, err := Encrypt(key, "s3cr3t with spaces & ünïcode")
	require.NoError(t, err)
	assert.NotEqual(t, value, again, "a fresh nonce every time")

	other, err := NewKey()
	require.NoError(t, err)
	otherKey, err := ParseKey(other)
	require.NoError(t, err)
	_, err = Decrypt(otherKey, value)
	assert.ErrorIs(t, err, ErrWrongKey)
	_, err = Decrypt(key, value[:len(value)-4]+"AAAA")
	assert.ErrorIs(t, err, ErrWrongKey)
	_, err = Decrypt(nil, value)
	assert.ErrorIs(t, err, ErrNoKey)
}

func TestKeys(t *testing.T) {
	_, err := ParseKey("not base64!")
	assert.EqualError(t, err, "the secret key is not base64")
	_, err = ParseKey("c2hvcnQ=")
	assert.EqualError(t, err, "the secret key is 5 bytes; AES-256 needs 32")

	b64, err := NewKey()
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(file, []byte(b64+"\n"), 0o600))
	key, err := LoadKeyFile(file)
	require.NoError(t, err)
	assert.Len(t, key, 32)
}
