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

// version is set at link time by release builds (the Dockerfile): -ldflags "-X
// github.com/tokenproxy/tokenproxy/internal/buildinfo.version=v1.2.3". It wins over the module version.
var version string

// Read returns the build information of the running binary.
func Read() Info {
	info := Info{Version: "(devel)", Revision: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		info.GoVersion = bi.GoVersion
		if bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
	}
	if version != "" {
		info.Version = version
	}
	if !ok {
		return info
	}
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
	return info
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
