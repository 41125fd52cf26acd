package config

import (
	"bytes"
	"crypto/sha256"
	"os"
)

// Source is a file a configuration was read from and a digest of its content at that time.
type Source struct {
	Path    string
	Digest  [sha256.Size]byte
	Missing bool // could not be read
}

func sourceOf(path string, content []byte) Source {
	return Source{Path: path, Digest: sha256.Sum256(content)}
}

// missing is a file that could not be read: any content it gets later is a change.
func missing(path string) Source {
	return Source{Path: path, Missing: true}
}

// FileSource reads a file the configuration depends on besides routes.yaml (the secret key file) as a
// source: its content now, or missing.
func FileSource(path string) Source {
	b, err := os.ReadFile(path)
	if err != nil {
		return missing(path)
	}
	return sourceOf(path, b)
}

// Changed reports whether any of the files now differs from what was read, or cannot be read. It compares
// content, not modification times, so a Kubernetes ..data symlink swap counts, and a touch does not.
func Changed(sources []Source) bool {
	for _, s := range sources {
		b, err := os.ReadFile(s.Path)
		if err != nil {
			if s.Missing {
				continue // still unreadable
			}
			return true
		}
		if s.Missing {
			return true
		}
		if d := sha256.Sum256(b); !bytes.Equal(d[:], s.Digest[:]) {
			return true
		}
	}
	return false
}

// SameSources reports whether two lists name the same files with the same content.
func SameSources(a, b []Source) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
