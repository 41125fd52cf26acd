package binary

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tokenproxy health asks the admin address the running process serves, which a reload that changes admin
// in routes.yaml does not move (it takes a restart): an exec liveness probe must not restart a healthy
// proxy. The process records the address it bound (a port 0 too) under $TMPDIR.
func TestHealthAsksTheAddressTheProcessServes(t *testing.T) {
	tmp := t.TempDir()
	dir := t.TempDir()
	routes := "routes:\n" + routeYAML("a", "a.test", newOpsTokens(t, nil).URL, "")
	config := writeFile(t, dir, "routes.yaml", "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\n"+routes)
	r := startArgs(t, []string{"-config", config, "-reload-interval", "50ms"}, "TMPDIR="+tmp)
	health := func(tmpdir string) (int, string, string) {
		return runBinary(t, "", []string{"TMPDIR=" + tmpdir}, "health", "-config", config)
	}

	code, out, errOut := health(tmp)
	assert.Equal(t, 0, code, errOut)
	assert.Equal(t, "ready\n", out, "port 0 in routes.yaml: only the record knows the port")

	moved := freeAddr(t)
	rewrite(t, config, fmt.Sprintf("listen: 127.0.0.1:0\nadmin: %s\n%s", moved, routes))
	r.waitLog(t, "the reload's warning", `"msg":"admin cannot change without a restart; the admin endpoints stay where they were"`,
		`"configured":"`+moved+`"`)
	code, out, errOut = health(tmp)
	assert.Equal(t, 0, code, "the process still serves where it started: %s", errOut)
	assert.Equal(t, "ready\n", out)
	code, _, errOut = health(t.TempDir())
	assert.Equal(t, 1, code, "without the record, routes.yaml's new address, where nothing listens")
	assert.Contains(t, errOut, moved)

	require.NoError(t, r.stop(t))
	entries, err := os.ReadDir(filepath.Join(tmp, fmt.Sprintf("tokenproxy-%d", os.Getuid())))
	require.NoError(t, err)
	assert.Empty(t, entries, "a clean stop removes its record")
	code, _, errOut = health(tmp)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, moved, "no record: routes.yaml's address")
}

// Where no record can be written, a reload that changes admin says that health will ask the new address.
func TestAReloadOfAdminWarnsWhenHealthHasNoRecord(t *testing.T) {
	dir := t.TempDir()
	notADir := writeFile(t, dir, "tmp", "a file, not a directory")
	routes := "routes:\n" + routeYAML("a", "a.test", newOpsTokens(t, nil).URL, "")
	config := writeFile(t, dir, "routes.yaml", "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\n"+routes)
	r := startArgs(t, []string{"-config", config, "-reload-interval", "50ms"}, "TMPDIR="+notADir)
	rewrite(t, config, "listen: 127.0.0.1:0\nadmin: "+freeAddr(t)+"\n"+routes)
	r.waitLog(t, "the reload's warning", `"msg":"admin cannot change without a restart; the admin endpoints stay where they were, `+
		`but tokenproxy health asks the new address: it could not be told the old one (no writable TMPDIR)"`)
	require.NoError(t, r.stop(t))
}

// rewrite replaces a file in one step, as a deployment tool or a ConfigMap update would.
func rewrite(t *testing.T, path, content string) {
	require.NoError(t, os.WriteFile(path+".tmp", []byte(content), 0o600))
	require.NoError(t, os.Rename(path+".tmp", path))
}
