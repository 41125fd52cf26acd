package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/tokenproxy/tokenproxy/internal/buildinfo"
)

// runVersion prints the module version and the VCS revision the binary was built from.
func runVersion(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy version", "tokenproxy version", stderr)
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	info := buildinfo.Read()
	fmt.Fprintf(stdout, "tokenproxy %s (revision %s", info.Version, info.ShortRevision())
	if info.Time != "" {
		fmt.Fprintf(stdout, ", %s", info.Time)
	}
	fmt.Fprintf(stdout, ", %s)\n", info.GoVersion)
	if unknown := info.Unknown(); len(unknown) > 0 { // on stderr: scripts read the line above
		fmt.Fprintf(stderr, "tokenproxy version: this build does not know its %s (built with -buildvcs=false, or from sources without .git); set them when building:\n"+
			"  go build -ldflags \"-X %s=v1.2.3 -X %s=$(git rev-parse HEAD)\" -o tokenproxy .\n"+
			"  docker build --build-arg VERSION=v1.2.3 --build-arg REVISION=$(git rev-parse HEAD) .\n",
			strings.Join(unknown, " or "), buildinfo.VersionSymbol, buildinfo.RevisionSymbol)
	}
	return 0
}
