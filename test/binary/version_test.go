package binary

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dockerBuild runs the Dockerfile's build step as docker would: its ARGs, with their defaults unless args
// (NAME=value) give them, as its environment, and no .git (-buildvcs=false); the binary goes to bin.
func dockerBuild(t *testing.T, bin string, args ...string) {
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	step := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build (?:.*\\\n)*.*)$`).FindStringSubmatch(string(raw))
	require.NotNil(t, step, "the Dockerfile's go build step")
	script := strings.ReplaceAll(strings.ReplaceAll(step[1], "\\\n", " "), "/out/tokenproxy", bin)
	env := append(os.Environ(), "GOFLAGS=-buildvcs=false")
	for _, arg := range regexp.MustCompile(`(?m)^ARG (\w+)(?:=(.*))?$`).FindAllStringSubmatch(string(raw), -1) {
		env = append(env, arg[1]+"="+arg[2])
	}
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = root
	cmd.Env = append(env, args...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s\n%s", script, out)
}

// A build that records no version or revision (-buildvcs=false, sources without .git) says so, and how to
// set them; the command it gives, and the Dockerfile given its build arguments, do set them.
func TestVersionSaysHowToSetIt(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown")
	dockerBuild(t, unknown) // docker build without --build-arg
	code, out, errOut := runCommand(t, unknown, "version")
	assert.Equal(t, 0, code)
	assert.Regexp(t, `^tokenproxy \(devel\) \(revision unknown, go1\.\d+`, out)
	assert.Contains(t, errOut, "tokenproxy version: this build does not know its version or revision (built with -buildvcs=false, or from sources without .git); set them when building:\n")
	assert.Contains(t, errOut, "  docker build --build-arg VERSION=v1.2.3 --build-arg REVISION=$(git rev-parse HEAD) .\n")
	ldflags := regexp.MustCompile(`  go build -ldflags "([^"]+)" -o tokenproxy \.\n`).FindStringSubmatch(errOut)
	require.NotNil(t, ldflags, "the go build command: %s", errOut)

	// The command it gives, as a shell would run it.
	told := filepath.Join(dir, "told")
	flags := strings.ReplaceAll(ldflags[1], "$(git rev-parse HEAD)", "89abcdef0123456789abcdef0123456789abcdef")
	out, err := runGo("build", "-buildvcs=false", "-ldflags", flags, "-o", told, ".")
	require.NoError(t, err, out)
	code, out, errOut = runCommand(t, told, "version")
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(out, "tokenproxy v1.2.3 (revision 89abcdef0123, go1."), out)
	assert.Empty(t, errOut)

	// The Dockerfile with its build arguments; one of them missing is named.
	released := filepath.Join(dir, "released")
	dockerBuild(t, released, "VERSION=v0.4.0")
	code, out, errOut = runCommand(t, released, "version")
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(out, "tokenproxy v0.4.0 (revision unknown, go1."), out)
	assert.Contains(t, errOut, "this build does not know its revision (")
	dockerBuild(t, released, "VERSION=v0.4.0", "REVISION=0123456789abcdef0123")
	code, out, errOut = runCommand(t, released, "version")
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(out, "tokenproxy v0.4.0 (revision 0123456789ab, go1."), out)
	assert.Empty(t, errOut)
}

// A release build carries its version from the Dockerfile's -ldflags.
func TestVersionFromTheBuild(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tokenproxy")
	out, err := runGo("build", "-ldflags", "-X github.com/tokenproxy/tokenproxy/internal/buildinfo.version=v9.8.7 "+
		"-X github.com/tokenproxy/tokenproxy/internal/buildinfo.revision=0123456789abcdef0123", "-o", bin, ".")
	require.NoError(t, err, out)
	code, stdout, _ := runCommand(t, bin, "version")
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(stdout, "tokenproxy v9.8.7 (revision 0123456789ab, "), stdout)
}
