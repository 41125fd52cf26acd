// Package cli is tokenproxy's command line: the flags of each command, their dispatch, and the small
// commands (validate, check, health, encrypt, ca, version); serve hands its settings to internal/app.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/tokenproxy/tokenproxy/internal/app"
	"github.com/tokenproxy/tokenproxy/secrets"
)

const usage = `tokenproxy puts OAuth 2.0 client-credentials tokens on the requests of apps that send them through it.

usage:
  tokenproxy [serve] [-config F] [-secret-key-file F] [-log-level L] [-log-format F] [-reload-interval D] [-drain-delay D]
  tokenproxy validate [-config F] [-secret-key-file F] [-syntax-only]   check routes.yaml offline
  tokenproxy check [-config F] [-secret-key-file F] [-route NAME] [-url URL]   test-fire routes
  tokenproxy health [-config F] [-timeout D]   exit 0 when the running proxy is ready
  tokenproxy encrypt [-secret-key-file F] < secret   print an aes256gcm: value for routes.yaml
  tokenproxy ca -out DIR   write a CA for interception, with trust bundles for apps
  tokenproxy version
Run tokenproxy COMMAND -h (or tokenproxy help COMMAND) for a command's flags.`

// command runs a subcommand and returns its exit code.
type command func(args []string, stdin io.Reader, stdout, stderr io.Writer) int

var commands map[string]command

// The commands are set in init: their flag errors list the commands, which a variable's initializer could
// not refer to.
func init() {
	commands = map[string]command{
		"serve":    runServe,
		"validate": runValidate,
		"check":    runCheck,
		"health":   runHealth,
		"encrypt":  runEncrypt,
		"ca":       runCA,
		"version":  runVersion,
	}
}

// Run runs the command args name (serve without one) and returns the exit code: 0 after a clean stop, 1
// when serving or a check fails, 2 for bad flags or configuration.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return runServe(args, stdin, stdout, stderr)
	}
	if args[0] == "help" {
		switch {
		case len(args) == 1:
			fmt.Fprintln(stdout, usage)
			return 0
		case len(args) == 2 && commands[args[1]] != nil:
			return commands[args[1]]([]string{"-h"}, stdin, stdout, stdout)
		}
		if len(args) > 2 {
			fmt.Fprintf(stderr, "tokenproxy help: one command at a time (got %q); commands: %s\n", strings.Join(args[1:], " "), commandNames())
		} else {
			fmt.Fprintf(stderr, "tokenproxy help: %q is not a command; commands: %s\n", args[1], commandNames())
		}
		return 2
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tokenproxy: unknown command %q; commands: %s\n\n%s\n", args[0], commandNames(), usage)
		return 2
	}
	return cmd(args[1:], stdin, stdout, stderr)
}

func commandNames() string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// newFlagSet returns the flags of one command; -h prints its usage line and each flag with its default once.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses a command's flags. It returns -1 when the command should go on, else the exit code:
// 0 after -h, 2 for a bad flag or a word that is no flag.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q (flags come as -name value; commands: %s)\n",
			fs.Name(), fs.Arg(0), commandNames())
		return 2
	}
	return -1
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// addConfigFlags defines -config and -secret-key-file; the files are known once fs is parsed.
func addConfigFlags(fs *flag.FlagSet) *app.ConfigFiles {
	var f app.ConfigFiles
	fs.StringVar(&f.Path, "config", envOr("TOKENPROXY_CONFIG", "routes.yaml"), "the routes file (or set $TOKENPROXY_CONFIG)")
	fs.StringVar(&f.SecretKeyFile, "secret-key-file", "", "file with the base64 key for aes256gcm: secrets; without it, $"+secrets.KeyEnv)
	return &f
}
