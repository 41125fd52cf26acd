// Package secrets encrypts and decrypts client secrets at rest with AES-256-GCM, so routes.yaml can hold
// `aes256gcm:<base64>` instead of a plain secret.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Prefix marks an encrypted value.
const Prefix = "aes256gcm:"

// KeyEnv names the environment variable holding the base64 key.
const KeyEnv = "TOKENPROXY_SECRET_KEY"

// ErrNoKey is returned when an encrypted value needs a key and none was given.
var ErrNoKey = errors.New("no key: set " + KeyEnv + " (base64 of 32 bytes) or -secret-key-file")

// ErrWrongKey is returned when a value does not decrypt: the key is not the one it was encrypted with, or
// the value was damaged. Nothing of the value is returned.
var ErrWrongKey = errors.New("cannot decrypt: wrong key, or the value was damaged")

// IsEncrypted reports whether v is an encrypted value.
func IsEncrypted(v string) bool { return strings.HasPrefix(v, Prefix) }

// ParseKey decodes a base64 key of exactly 32 bytes.
func ParseKey(b64 string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, errors.New("the secret key is not base64")
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("the secret key is %d bytes; AES-256 needs 32", len(key))
	}
	return key, nil
}

// LoadKeyFile reads a base64 key from a file.
func LoadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: cannot read: %w", path, err)
	}
	key, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// NewKey returns a fresh random key, base64-encoded.
func NewKey() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// Encrypt seals plaintext under key and returns Prefix + base64(nonce || ciphertext).
func Encrypt(key []byte, plaintext string) (string, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := aead.Seal(nonce, nonce, []byte(plaintext), []byte(Prefix))
	return Prefix + base64.StdEncoding.EncodeToString(sealed), nil
}

// Decrypt opens a value made by Encrypt.
func Decrypt(key []byte, value string) (string, error) {
	if key == nil {
		return "", ErrNoKey
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(value, Prefix))
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return "", ErrWrongKey
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(Prefix))
	if err != nil {
		return "", ErrWrongKey
	}
	return string(plain), nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("the secret key is %d bytes; AES-256 needs 32", len(key))
	}
	return cipher.NewGCM(block)
}
