package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/secrets"
)

// onTerminal runs the binary under script(1), which gives it a pseudo-terminal. When prompt is set, input
// is written only once the program has printed it, as a person would type.
func onTerminal(t *testing.T, env []string, prompt, input string, args ...string) string {
	path, err := exec.LookPath("script")
	require.NoError(t, err, "script (util-linux) is needed for this test")
	cmd := exec.Command(path, "-qec", binary+" "+strings.Join(args, " "), "/dev/null")
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	var out strings.Builder
	done := make(chan error, 1)
	go func() {
		r := bufio.NewReader(stdout)
		typed := prompt == ""
		for {
			b, err := r.ReadByte()
			if err != nil {
				done <- err
				return
			}
			out.WriteByte(b)
			if !typed && strings.Contains(out.String(), prompt) {
				typed = true
				_, _ = io.WriteString(stdin, input)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("no end of output; so far: %q", out.String())
	}
	_ = cmd.Wait()
	return out.String()
}

func TestEncryptDoesNotEchoOnATerminal(t *testing.T) {
	key, err := secrets.NewKey()
	require.NoError(t, err)
	out := onTerminal(t, []string{secrets.KeyEnv + "=" + key}, "secret (not echoed): ", binSecret+"\r", "encrypt")
	assert.Contains(t, out, "aes256gcm:")
	assert.NotContains(t, out, binSecret, "the secret never appears on the screen")
}

func TestCheckMarksAreColouredOnATerminal(t *testing.T) {
	tokens, supplier, _ := checkServers(t)
	config := checkConfig(t, tokens.URL, binSecret, supplier.Listener.Addr().String())
	out := onTerminal(t, nil, "", "", "check", "-config", config)
	assert.Contains(t, out, "\x1b[32m✔\x1b[0m token:")
	assert.Contains(t, out, "\x1b[31m✘\x1b[0m token:")
}
