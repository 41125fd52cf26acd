package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/mitm"
	"github.com/tokenproxy/tokenproxy/proxy"
	"gopkg.in/yaml.v3"
)

// The routes.yaml at the root starts as it is.
func TestRepositoryRoutesYAMLLoads(t *testing.T) {
	cfg, err := config.Load("routes.yaml", config.LoadOptions{})
	require.NoError(t, err)
	_, err = proxy.New(cfg, proxy.Options{})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:3128", cfg.Listen)
}

// The routes.yaml inside each example is valid once its files exist where the example mounts them.
func TestExampleRoutesAreValid(t *testing.T) {
	dir := t.TempDir()
	_, _, err := mitm.WriteCA(filepath.Join(dir, "ca"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("s\n"), 0o600))
	fixPaths := strings.NewReplacer(
		"/etc/tokenproxy/ca/", filepath.Join(dir, "ca")+"/",
		"/etc/tokenproxy/secrets/supplier-orders", filepath.Join(dir, "secret"),
		"clientSecretFile: supplier.secret", "clientSecretFile: secret",
	)

	var routes []string
	f, err := os.Open("examples/kubernetes/pod.yaml")
	require.NoError(t, err)
	defer f.Close()
	dec := yaml.NewDecoder(f)
	kinds := map[string]bool{}
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
			Spec struct {
				InitContainers []struct {
					Name          string `yaml:"name"`
					RestartPolicy string `yaml:"restartPolicy"`
				} `yaml:"initContainers"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		kinds[doc.Kind] = true
		if doc.Kind == "ConfigMap" {
			routes = append(routes, doc.Data["routes.yaml"])
		}
		if doc.Kind == "Pod" {
			require.Len(t, doc.Spec.InitContainers, 1)
			assert.Equal(t, "Always", doc.Spec.InitContainers[0].RestartPolicy, "a native sidecar")
		}
	}
	assert.Equal(t, map[string]bool{"ConfigMap": true, "Secret": true, "Pod": true}, kinds)

	compose, err := os.ReadFile("examples/docker-compose/routes.yaml")
	require.NoError(t, err)
	routes = append(routes, string(compose))
	var composeFile map[string]any
	raw, err := os.ReadFile("examples/docker-compose/docker-compose.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.NewDecoder(bytes.NewReader(raw)).Decode(&composeFile))

	for _, r := range routes {
		_, err := config.Parse(filepath.Join(dir, "routes.yaml"), []byte(fixPaths.Replace(r)), config.LoadOptions{})
		assert.NoError(t, err)
	}
}

// Docker cannot run here; this checks what the Dockerfile promises: multi-stage, a static binary, a
// distroless base, a non-root user.
func TestDockerfileShape(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	var froms []string
	var user string
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "FROM":
			froms = append(froms, fields[1])
		case "USER":
			user = fields[1]
		}
	}
	require.Len(t, froms, 2, "multi-stage")
	assert.True(t, strings.HasPrefix(froms[0], "golang:"))
	assert.Contains(t, froms[1], "distroless/static")
	assert.Contains(t, string(raw), "CGO_ENABLED=0 go build")
	require.NotEmpty(t, user)
	assert.NotContains(t, []string{"root", "0", "0:0"}, user)
	assert.Contains(t, string(raw), `ENTRYPOINT ["/tokenproxy"]`)
}
