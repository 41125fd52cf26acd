// Command tokenproxy is a forward-proxy sidecar that puts OAuth 2.0 client-credentials tokens on the
// requests of apps that cannot fetch them themselves.
package main

import (
	"os"

	"github.com/tokenproxy/tokenproxy/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
