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

// Generated CAs and secrets stay out of the image and out of git.
func TestGeneratedFilesStayOutOfImagesAndGit(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	require.NoError(t, err)
	var patterns []*regexp.Regexp
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, dockerignorePattern(line))
		}
	}
	ignored := func(path string) bool {
		for _, p := range patterns {
			if p.MatchString(path) {
				return true
			}
		}
		return false
	}
	generated := []string{"ca/ca.key", "examples/docker-compose/config/ca/ca.key", "examples/docker-compose/config/ca/truststore.p12",
		"examples/docker-compose/config/supplier.secret", "some/dir/client.key",
		// gateway.yaml's CA (tokenproxy ca -out ca/gateway), from the root or from examples/kubernetes
		"ca/gateway/ca.key", "ca/gateway/bundle.pem", "examples/kubernetes/ca/gateway/ca.key", "examples/kubernetes/ca/gateway/truststore.p12"}
	for _, p := range generated {
		assert.True(t, ignored(p), ".dockerignore keeps %s out of the image", p)
	}
	for _, p := range []string{"go.mod", "main.go", "secrets/secrets.go", "mitm/mitm.go", "examples/docker-compose/config/routes.yaml"} {
		assert.False(t, ignored(p), ".dockerignore must not drop %s", p)
	}
	git, err := exec.LookPath("git")
	require.NoError(t, err)
	for _, p := range generated {
		cmd := exec.Command(git, "check-ignore", "-q", p)
		cmd.Dir = root
		assert.NoError(t, cmd.Run(), ".gitignore keeps %s out of the repository", p)
	}
}

// dockerignorePattern turns a .dockerignore line into a regexp over context-relative paths: ** crosses
// directories, * and ? do not, and a matched directory takes its contents along.
func dockerignorePattern(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch {
		case strings.HasPrefix(p[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case p[i] == '*':
			b.WriteString("[^/]*")
		case p[i] == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(p[i])))
		}
	}
	b.WriteString("(/.*)?$")
	return regexp.MustCompile(b.String())
}

// Docker cannot run here; this checks what the Dockerfile promises: multi-stage, a static binary with its
// version, a distroless base, a non-root user.
func TestDockerfileShape(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
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
	assert.Contains(t, string(raw), "-X github.com/tokenproxy/tokenproxy/internal/buildinfo.version=${VERSION}")
	assert.Contains(t, string(raw), "-X github.com/tokenproxy/tokenproxy/internal/buildinfo.revision=${REVISION}", ".git stays out of the context")
	require.NotEmpty(t, user)
	assert.NotContains(t, []string{"root", "0", "0:0"}, user)
	assert.Contains(t, string(raw), `ENTRYPOINT ["/tokenproxy"]`)
}
