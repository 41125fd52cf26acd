// Package buildinfo reads what the Go toolchain recorded about this binary: module version and VCS revision.
package buildinfo

import (
	"runtime/debug"
)

// Info describes the running binary.
type Info struct {
	Version   string // module version, "(devel)" for a build from a checkout
	Revision  string // VCS revision, "unknown" when not recorded
	Time      string // VCS commit time (RFC 3339), empty when not recorded
	Modified  bool   // built from a tree with uncommitted changes
	GoVersion string
}

// version and revision are set at link time by release builds, whose sources come without .git (the
// Dockerfile): -ldflags "-X github.com/tokenproxy/tokenproxy/internal/buildinfo.version=v1.2.3 -X
// .../buildinfo.revision=<commit>". They win over what the toolchain recorded.
var version, revision string

// VersionSymbol and RevisionSymbol are the names -ldflags -X sets them by.
const (
	VersionSymbol  = "github.com/tokenproxy/tokenproxy/internal/buildinfo.version"
	RevisionSymbol = "github.com/tokenproxy/tokenproxy/internal/buildinfo.revision"
)

// Unknown defaults, what Read returns when neither the link nor the toolchain recorded a value.
const (
	unknownVersion  = "(devel)"
	unknownRevision = "unknown"
)

// Read returns the build information of the running binary.
func Read() Info {
	info := Info{Version: unknownVersion, Revision: unknownRevision}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		info.GoVersion = bi.GoVersion
		if bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
	}
	if ok {
		info.vcs(bi)
	}
	if version != "" {
		info.Version = version
	}
	if revision != "" {
		info.Revision, info.Modified = revision, false
	}
	return info
}

// vcs reads what the toolchain recorded of the checkout the binary was built from.
func (info *Info) vcs(bi *debug.BuildInfo) {
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
}

// ShortRevision is the first 12 digits of the revision, with "+dirty" for a modified tree.
func (i Info) ShortRevision() string {
	r := i.Revision
	if len(r) > 12 {
		r = r[:12]
	}
	if i.Modified {
		r += "+dirty"
	}
	return r
}

// Unknown names what the build recorded of neither: "version", "revision", both or none (a build with
// -buildvcs=false, or from sources without .git, and without -ldflags -X).
func (i Info) Unknown() []string {
	var unknown []string
	if i.Version == unknownVersion || i.Version == "" {
		unknown = append(unknown, "version")
	}
	if i.Revision == unknownRevision || i.Revision == "" {
		unknown = append(unknown, "revision")
	}
	return unknown
}
