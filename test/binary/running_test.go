package binary

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

// running is a started tokenproxy binary whose JSON log lines are collected.
type running struct {
	cmd   *exec.Cmd
	addr  string // the proxy's
	admin string // the admin endpoints', when configured
	mu    sync.Mutex
	lines []string
	done  chan error
}

func (r *running) logs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

func start(t *testing.T, config string, env ...string) *running {
	return startArgs(t, []string{"-config", config}, env...)
}

// startArgs starts the binary with args (and JSON logs) and waits until it listens.
func startArgs(t *testing.T, args []string, env ...string) *running {
	cmd := exec.Command(binary, append(args, "-log-format", "json")...)
	// A TMPDIR of the test's own keeps the record health reads (internal/runstate) out of the machine's /tmp.
	cmd.Env = append(append(os.Environ(), "TMPDIR="+t.TempDir()), env...)
	testkit.DiesWithTest(cmd)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	r := &running{cmd: cmd, done: make(chan error, 1)}
	type listen struct{ Msg, Addr, Admin string }
	listening := make(chan listen, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, sc.Text())
			r.mu.Unlock()
			var line listen
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				listening <- line
			}
		}
		r.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case l := <-listening:
		r.addr, r.admin = l.Addr, l.Admin
	case err := <-r.done:
		t.Fatalf("tokenproxy exited before listening: %v\n%s", err, r.logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("tokenproxy did not start listening:\n%s", r.logs())
	}
	return r
}

// waitLog waits until a log line contains every one of parts, and returns it.
func (r *running) waitLog(t *testing.T, what string, parts ...string) string {
	t.Helper()
	var line string
	testkit.WaitForShowing(t, what, func() bool {
		var ok bool
		line, ok = r.findLog(parts...)
		return ok
	}, r.logs)
	return line
}

// countLog counts the log lines that contain every one of parts.
func (r *running) countLog(parts ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
lines:
	for _, l := range r.lines {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue lines
			}
		}
		n++
	}
	return n
}

func (r *running) findLog(parts ...string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
lines:
	for _, l := range r.lines {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue lines
			}
		}
		return l, true
	}
	return "", false
}

// stop sends SIGTERM and waits for the exit code.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-r.done:
		return err
	case <-time.After(35 * time.Second):
		t.Fatal("tokenproxy did not stop after SIGTERM")
		return nil
	}
}
