package architecture

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Allocation counts go through testkit.AllocsPerRun, which skips them under -race and insists on a name
// ending in Allocs: .ci/run selects them by that name for its run without -race, so a count taken any
// other way would run only where it is skipped, or not at all.
func TestAllocationCountsGoThroughTestkit(t *testing.T) {
	root := strings.TrimSpace(goCommand(t, "list", "-m", "-f", "{{.Dir}}"))
	needle := "testing.AllocsPerRun" + "("
	var checked int
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		assert.NotContains(t, string(src), needle, "%s: count allocations with testkit.AllocsPerRun", rel)
		return nil
	})
	require.NoError(t, err)
	require.Positive(t, checked)
}
