package examples_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/proxy"
)

// The routes.yaml at the root starts as it is.
func TestRepositoryRoutesYAMLLoads(t *testing.T) {
	cfg, err := config.Load("../routes.yaml", config.LoadOptions{})
	require.NoError(t, err)
	_, err = proxy.New(cfg, proxy.Options{})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:3128", cfg.Listen)
}
