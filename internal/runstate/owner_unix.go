//go:build unix

package runstate

import (
	"os"
	"syscall"
)

// closedToOthers reports whether this process's user owns the file and no other user may change it.
func closedToOthers(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid() && fi.Mode().Perm()&0o077 == 0
}
