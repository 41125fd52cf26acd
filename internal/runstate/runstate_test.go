package runstate

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestARecordIsFoundByTheSameFileWhateverItsSpelling(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	dir := t.TempDir()
	config := filepath.Join(dir, "routes.yaml")
	remove, err := Write(config, "127.0.0.1:9901")
	require.NoError(t, err)

	t.Chdir(dir)
	rec, ok, err := Read("routes.yaml")
	require.NoError(t, err)
	require.True(t, ok, "a relative path names the same file")
	assert.Equal(t, Record{Config: config, Admin: "127.0.0.1:9901"}, rec)
	_, ok, err = Read(filepath.Join(dir, "other.yaml"))
	require.NoError(t, err)
	assert.False(t, ok, "another file has no record")

	fi, err := os.Stat(Dir())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	remove()
	_, ok, err = Read(config)
	require.NoError(t, err)
	assert.False(t, ok, "removed")
}

// A process removes only its own record: a later process serving the same file may have replaced it.
func TestRemoveLeavesARecordAnotherProcessWrote(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	config := filepath.Join(t.TempDir(), "routes.yaml")
	removeFirst, err := Write(config, "127.0.0.1:1111")
	require.NoError(t, err)
	_, err = Write(config, "127.0.0.1:2222")
	require.NoError(t, err)
	removeFirst()
	rec, ok, err := Read(config)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "127.0.0.1:2222", rec.Admin)
}

// Records in a directory others may write are neither written nor believed: another user could plant one.
func TestADirectoryOpenToOthersIsNotTrusted(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	config := filepath.Join(t.TempDir(), "routes.yaml")
	_, err := Write(config, "127.0.0.1:9901")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(Dir(), 0o777))
	_, ok, err := Read(config)
	assert.False(t, ok)
	assert.ErrorContains(t, err, "is not a directory of this user's alone (mode 0700): its records are not trusted")
	_, err = Write(config, "127.0.0.1:9902")
	assert.ErrorContains(t, err, "is not a directory of this user's alone")

	// No directory at all is no record, and no error.
	t.Setenv("TMPDIR", t.TempDir())
	_, ok, err = Read(config)
	assert.NoError(t, err)
	assert.False(t, ok)
}
