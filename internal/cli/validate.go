package cli

import (
	"fmt"
	"io"

	"github.com/tokenproxy/tokenproxy/config"
)

// runValidate checks routes.yaml as start-up would, without the network: no discovery, no token request.
func runValidate(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy validate", "tokenproxy validate [-config F] [-secret-key-file F] [-syntax-only]", stderr)
	cf := addConfigFlags(fs)
	syntaxOnly := fs.Bool("syntax-only", false, "check keys and values without the environment and without reading any file, for pipelines that hold no secrets")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	var cfg *config.Config
	var err error
	if *syntaxOnly {
		cfg, err = cf.LoadSyntax()
	} else {
		cfg, err = cf.Load()
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	what := "valid"
	if *syntaxOnly {
		what = "valid syntax"
	}
	routes := "routes"
	if len(cfg.Routes) == 1 {
		routes = "route"
	}
	fmt.Fprintf(stdout, "%s: %s, %d %s\n", cfg.File, what, len(cfg.Routes), routes)
	return 0
}
