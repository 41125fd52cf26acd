package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tokenproxy/tokenproxy/internal/app"
	"github.com/tokenproxy/tokenproxy/secrets"
	"golang.org/x/term"
)

// runEncrypt reads a secret on stdin and prints the aes256gcm: value to paste into routes.yaml.
func runEncrypt(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy encrypt", "tokenproxy encrypt [-secret-key-file F] < secret", stderr)
	keyFile := fs.String("secret-key-file", "", "file with the base64 key; without it, $"+secrets.KeyEnv)
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	key, err := app.ConfigFiles{SecretKeyFile: *keyFile}.SecretKey()
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy encrypt: %v\n", err)
		return 2
	}
	if key == nil {
		newKey, _ := secrets.NewKey()
		fmt.Fprintf(stderr, "tokenproxy encrypt: %v\nA new key, if you need one (keep it out of routes.yaml):\n  %s=%s\n",
			secrets.ErrNoKey, secrets.KeyEnv, newKey)
		return 2
	}
	secret, err := readSecret(stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy encrypt: reading stdin: %v\n", err)
		return 1
	}
	if secret == "" {
		fmt.Fprintln(stderr, "tokenproxy encrypt: stdin is empty; pipe the secret in: tokenproxy encrypt < secret.txt")
		return 2
	}
	value, err := secrets.Encrypt(key, secret)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy encrypt: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, value)
	return 0
}

// readSecret reads one line; on a terminal without echo, so the secret does not stay on the screen.
func readSecret(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "secret (not echoed): ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		return strings.TrimRight(string(b), "\r\n"), err
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 64<<10)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
