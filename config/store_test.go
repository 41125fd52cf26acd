package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/redisstore"
)

const storeKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // base64 of 32 bytes

func TestStoreKey(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "redis-password"), []byte("pw-from-file\n"), 0o600))
	vars := map[string]string{"SECRET": "s", "TOKENPROXY_SECRET_KEY": storeKey, "REDIS_PASSWORD": "pw-from-env"}

	cfg, err := Parse(filepath.Join(dir, "routes.yaml"), []byte("store: redis://redis.platform:6379/0\nroutes:"+validRoute),
		LoadOptions{LookupEnv: env(vars), CheckStoreURL: redisstore.CheckURL})
	require.NoError(t, err)
	require.NotNil(t, cfg.Store)
	assert.Equal(t, "redis://redis.platform:6379/0", cfg.Store.URL)
	assert.Empty(t, cfg.Store.KeyPrefix, "the store's default")
	assert.Len(t, cfg.Store.SecretKey, 32)

	cfg, err = Parse(filepath.Join(dir, "routes.yaml"), []byte(`
store:
  url: rediss://redis.platform:6380/2
  passwordFile: redis-password
  keyPrefix: "team-a:"
routes:`+validRoute), LoadOptions{LookupEnv: env(vars), CheckStoreURL: redisstore.CheckURL})
	require.NoError(t, err)
	assert.Equal(t, "pw-from-file", cfg.Store.Password)
	assert.Equal(t, "team-a:", cfg.Store.KeyPrefix)

	cfg, err = Parse("routes.yaml", []byte("store: {url: \"redis://r:6379?master_name=tokens&addr=r2:26379\", password: \"${REDIS_PASSWORD}\"}\nroutes:"+validRoute),
		LoadOptions{LookupEnv: env(vars), CheckStoreURL: redisstore.CheckURL})
	require.NoError(t, err)
	assert.Equal(t, "pw-from-env", cfg.Store.Password)

	cfg, err = Parse("routes.yaml", []byte("routes:"+validRoute), LoadOptions{LookupEnv: env(vars)})
	require.NoError(t, err)
	assert.Nil(t, cfg.Store, "no store: tokens stay in the process")
}

func TestStoreKeyProblems(t *testing.T) {
	withKey := map[string]string{"SECRET": "s", "TOKENPROXY_SECRET_KEY": storeKey}
	tests := []struct {
		name, yaml string
		vars       map[string]string
		want       string
	}{
		{"no secret key", "store: redis://r:6379\n", map[string]string{"SECRET": "s"},
			"routes.yaml:1: store: a shared token store needs the secret key (TOKENPROXY_SECRET_KEY or -secret-key-file)"},
		{"not redis", "store: http://r:6379\n", withKey, `routes.yaml:1: store: "http://r:6379" is not a redis:// or rediss:// URL`},
		{"password hidden", "store: https://u:hunter22@r:6379\n", withKey, `routes.yaml:1: store: "https://u:xxxxx@r:6379" is not a redis:// or rediss:// URL`},
		{"no url", "store: {keyPrefix: a}\n", withKey, "routes.yaml:1: store.url: required key is missing"},
		{"both passwords", "store: {url: \"redis://r\", password: a, passwordFile: b}\n", withKey,
			"routes.yaml:1: store.passwordFile: set password or passwordFile, not both"},
		{"unknown key", "store: {url: \"redis://r\", prefix: a}\n", withKey, "routes.yaml:1: store.prefix: unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("routes.yaml", []byte(tt.yaml+"routes:"+validRoute), LoadOptions{LookupEnv: env(tt.vars),
				CheckStoreURL: redisstore.CheckURL})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "hunter22")
		})
	}
}
