package binary

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const binSecret = "binary-test-secret-77"

var (
	// root is the module's directory, where the program and the files shipped with it are.
	root string
	// binary is tokenproxy, built once for every test.
	binary string
)

func TestMain(m *testing.M) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go list -m: %v\n", err)
		os.Exit(1)
	}
	root = strings.TrimSpace(string(out))
	dir, err := os.MkdirTemp("", "tokenproxy-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "tokenproxy")
	if out, err := runGo("build", "-o", binary, "."); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runBinary runs the built tokenproxy and returns its exit code, stdout and stderr.
func runBinary(t *testing.T, stdin string, env []string, args ...string) (int, string, string) {
	return runWith(t, binary, stdin, env, args...)
}

// runCommand runs a program with args and returns its exit code, stdout and stderr.
func runCommand(t *testing.T, path string, args ...string) (int, string, string) {
	return runWith(t, path, "", nil, args...)
}

// runGo runs the go command in the module's directory.
func runGo(args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func runWith(t *testing.T, path, stdin string, env []string, args ...string) (int, string, string) {
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, stdout.String(), stderr.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}
