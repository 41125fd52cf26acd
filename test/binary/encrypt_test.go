package binary

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/secrets"
)

func TestEncryptThenRunWithTheEncryptedSecret(t *testing.T) {
	key, err := secrets.NewKey()
	require.NoError(t, err)
	keyEnv := []string{secrets.KeyEnv + "=" + key}

	code, value, errOut := runBinary(t, binSecret+"\n", keyEnv, "encrypt")
	require.Equal(t, 0, code, errOut)
	value = strings.TrimSpace(value)
	assert.True(t, strings.HasPrefix(value, "aes256gcm:"))
	assert.NotContains(t, value, binSecret)

	tokens, supplier := checkServers(t)
	config := checkConfig(t, tokens.URL, value, supplier.Listener.Addr().String())
	code, out, _ := runBinary(t, "", keyEnv, "check", "-config", config, "-route", "orders", "-url", supplier.URL)
	assert.Equal(t, 0, code, "the token endpoint received the decrypted secret:\n"+out)
	assert.EqualValues(t, 1, tokens.Count.Load())

	// The key may come from a file instead.
	keyFile := writeFile(t, t.TempDir(), "key", key+"\n")
	code, _, _ = runBinary(t, "", nil, "check", "-config", config, "-route", "orders", "-secret-key-file", keyFile)
	assert.Equal(t, 0, code)
	assert.EqualValues(t, 2, tokens.Count.Load())

	other, err := secrets.NewKey()
	require.NoError(t, err)
	code, _, errOut = runBinary(t, "", []string{secrets.KeyEnv + "=" + other}, "-config", config)
	assert.Equal(t, 2, code, "a wrong key stops start-up")
	assert.Contains(t, errOut, `routes[0].clientSecret: route "orders": the encrypted secret does not decrypt with this key`)
	assert.EqualValues(t, 2, tokens.Count.Load(), "no garbled secret was ever sent")

	code, _, errOut = runBinary(t, "", []string{secrets.KeyEnv + "="}, "-config", config)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "the encrypted secret needs a key: set TOKENPROXY_SECRET_KEY or -secret-key-file")

	code, _, errOut = runBinary(t, binSecret, []string{secrets.KeyEnv + "="}, "encrypt")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "no key: set TOKENPROXY_SECRET_KEY")
	assert.Contains(t, errOut, "A new key, if you need one")
}
