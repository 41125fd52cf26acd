package binary

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/secrets"
	"golang.org/x/sys/unix"
)

// terminal is the binary running on a pseudo-terminal, as a person at a shell would run it.
type terminal struct {
	t    *testing.T
	ptmx *os.File
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{} // closed when the terminal has nothing more to print
}

func onTerminal(t *testing.T, env []string, args ...string) *terminal {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	ptmx, err := pty.Start(cmd)
	require.NoError(t, err)
	term := &terminal{t: t, ptmx: ptmx, done: make(chan struct{})}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = ptmx.Close()
	})
	go func() {
		defer close(term.done)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil { // EIO once the program has exited and closed the terminal
				return
			}
		}
	}()
	return term
}

func (term *terminal) screen() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

// echoOff reports whether the terminal currently hides what is typed; on Linux the master side reads
// the settings the program made on its side.
func (term *terminal) echoOff() bool {
	rc, err := term.ptmx.SyscallConn()
	require.NoError(term.t, err)
	off := false
	require.NoError(term.t, rc.Control(func(fd uintptr) {
		tio, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		off = err == nil && tio.Lflag&unix.ECHO == 0
	}))
	return off
}

func (term *terminal) typeIn(s string) {
	_, err := io.WriteString(term.ptmx, s)
	require.NoError(term.t, err)
}

// finished waits until the program has printed everything and returns the screen.
func (term *terminal) finished() string {
	term.t.Helper()
	select {
	case <-term.done:
	case <-time.After(20 * time.Second):
		term.t.Fatalf("no end of output; so far: %q", term.screen())
	}
	return term.screen()
}

func TestEncryptDoesNotEchoOnATerminal(t *testing.T) {
	key, err := secrets.NewKey()
	require.NoError(t, err)
	term := onTerminal(t, []string{secrets.KeyEnv + "=" + key}, "encrypt")
	testkit.WaitForShowing(t, "the prompt", func() bool { return strings.Contains(term.screen(), "secret (not echoed): ") }, term.screen)
	// Typing before the program has switched echo off would show the secret: wait for the switch itself.
	testkit.WaitForShowing(t, "echo to be switched off", term.echoOff, term.screen)
	term.typeIn(binSecret + "\r")
	out := term.finished()
	assert.Contains(t, out, "aes256gcm:")
	assert.NotContains(t, out, binSecret, "the secret never appears on the screen")
}

func TestCheckMarksAreColouredOnATerminal(t *testing.T) {
	tokens, supplier := checkServers(t)
	config := checkConfig(t, tokens.URL, binSecret, supplier.Listener.Addr().String())
	out := onTerminal(t, nil, "check", "-config", config).finished()
	assert.Contains(t, out, "\x1b[32m✔\x1b[0m token:")
	assert.Contains(t, out, "\x1b[31m✘\x1b[0m token:")
}
