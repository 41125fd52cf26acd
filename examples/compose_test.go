package examples_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
	tokenproxy "github.com/tokenproxy/tokenproxy/internal/app"
	"github.com/tokenproxy/tokenproxy/mitm"
	"gopkg.in/yaml.v3"
)

func TestComposeExample(t *testing.T) {
	raw, err := os.ReadFile("docker-compose/docker-compose.yaml")
	require.NoError(t, err)
	var compose struct {
		Services map[string]struct {
			Image       string
			Command     []string
			Volumes     []string
			ReadOnly    bool `yaml:"read_only"`
			Tmpfs       []string
			Healthcheck struct {
				Test []string
			}
			DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
			Environment map[string]string
			NetworkMode string `yaml:"network_mode"`
		}
	}
	require.NoError(t, yaml.Unmarshal(raw, &compose))
	tp, app := compose.Services["tokenproxy"], compose.Services["app"]
	assert.Equal(t, []string{"CMD", "/tokenproxy", "health", "-config", "/etc/tokenproxy/routes.yaml"}, tp.Healthcheck.Test,
		"distroless has no shell: the healthcheck is the binary")
	assert.Equal(t, "service_healthy", app.DependsOn["tokenproxy"].Condition)
	assert.True(t, tp.ReadOnly)
	assert.Contains(t, tp.Tmpfs, "/tmp", "health finds the admin address the process serves under $TMPDIR")
	assert.True(t, app.ReadOnly, "the app's root filesystem is read-only too")
	assert.Equal(t, []string{"./config:/etc/tokenproxy:ro"}, tp.Volumes, "a directory, so reloads see edits")
	for _, name := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"} {
		assert.Equal(t, "http://127.0.0.1:3128", app.Environment[name], name)
	}
	assertNoProxy(t, "compose app", app.Environment)
	mounted := map[string]string{} // in the container: on the host
	for _, v := range app.Volumes {
		assert.NotContains(t, v, "ca.key")
		parts := strings.Split(v, ":")
		require.GreaterOrEqual(t, len(parts), 2, v)
		mounted[parts[1]] = parts[0]
	}
	for _, name := range []string{"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"} {
		assert.Equal(t, "bundle.pem", filepath.Base(mounted[app.Environment[name]]),
			"%s=%s replaces the default roots: it must be the mounted bundle.pem, not ca.crt alone", name, app.Environment[name])
	}
	assert.Regexp(t, `:v\d+\.\d+\.\d+$`, tp.Image)

	// The routes it mounts load once the files of its header comment exist.
	dir := t.TempDir()
	_, _, err = mitm.WriteCA(filepath.Join(dir, "ca"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "supplier.secret"), []byte("s"), 0o400))
	routes, err := os.ReadFile("docker-compose/config/routes.yaml")
	require.NoError(t, err)
	cfg, err := config.Parse(filepath.Join(dir, "routes.yaml"), routes, tokenproxy.LoadOptions(nil))
	require.NoError(t, err)
	assert.NotEmpty(t, cfg.Admin, "the healthcheck needs the admin endpoints")
	assert.True(t, config.IsLoopback(strings.Split(cfg.Admin, ":")[0]), "health dials inside the container")
}
