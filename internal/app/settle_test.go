package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
)

// The configurations of TestAReloadServesOnlyFilesThatHaveSettled: the old one in service, the new one
// written over it. Each reads its secret from a file, so routes.yaml and the secret change together.
const (
	settledRouteOne = "routes:\n  - {name: a, hosts: [a.example], tokenUrl: \"https://auth.example/t\", clientId: c, clientSecretFile: secret, scope: one}\n"
	settledRouteTwo = "routes:\n  - {name: a, hosts: [a.example], tokenUrl: \"https://auth.example/t\", clientId: c, clientSecretFile: secret, scope: two}\n"
	settledReject   = "unmatched: reject\n"
)

// settledState names the configuration in service: old, new or, for anything else, what it is (no secret).
func settledState(cfg *config.Config) string {
	tok := cfg.Routes[0].Token
	secret := map[string]string{"secret-one": "one", "secret-two": "two"}[tok.ClientSecret]
	switch got := fmt.Sprintf("scope=%s secret=%s reject=%t", tok.Scope, secret, cfg.RejectUnmatched); got {
	case "scope=one secret=one reject=true":
		return "old"
	case "scope=two secret=two reject=true":
		return "new"
	default:
		return got
	}
}

func writeTestFile(t *testing.T, path, content string) {
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

// writeInPlace writes content to path as an editor saving in place does: the same file, truncated, then
// written; each returned step writes the next part, the last one closes the file.
func writeInPlace(t *testing.T, path string, parts ...string) []func() {
	var f *os.File
	steps := make([]func(), len(parts))
	for i, p := range parts {
		steps[i] = func() {
			if i == 0 {
				var err error
				f, err = os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
				require.NoError(t, err)
			}
			_, err := f.WriteString(p)
			require.NoError(t, err)
			if i == len(parts)-1 {
				require.NoError(t, f.Close())
			}
		}
	}
	return steps
}

// flatFiles is routes.yaml and its secret file side by side; it returns routes.yaml's path.
func flatFiles(t *testing.T, dir string) string {
	writeTestFile(t, filepath.Join(dir, "secret"), "secret-one\n")
	writeTestFile(t, filepath.Join(dir, "routes.yaml"), settledRouteOne+settledReject)
	return filepath.Join(dir, "routes.yaml")
}

// configMapFiles is the layout the kubelet gives a ConfigMap or Secret volume: each file a symlink into
// ..data, itself a symlink to a timestamped directory. It returns routes.yaml's path.
func configMapFiles(t *testing.T, dir string) string {
	require.NoError(t, os.Mkdir(filepath.Join(dir, "..2026_01_01"), 0o755))
	writeTestFile(t, filepath.Join(dir, "..2026_01_01", "routes.yaml"), settledRouteOne+settledReject)
	writeTestFile(t, filepath.Join(dir, "..2026_01_01", "secret"), "secret-one\n")
	require.NoError(t, os.Symlink("..2026_01_01", filepath.Join(dir, "..data")))
	for _, f := range []string{"routes.yaml", "secret"} {
		require.NoError(t, os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)))
	}
	return filepath.Join(dir, "routes.yaml")
}

// A change is loaded only once every file it reads has read the same at two polls in a row. A file
// written in place in steps, with a poll between them, is never served as it stood between them, even
// when that is a valid configuration; a rename or a ConfigMap's ..data swap is served at the second poll
// after it, like any other change. No refusal is logged for what a writer has not finished.
func TestAReloadServesOnlyFilesThatHaveSettled(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string) string // the files in service; returns routes.yaml's path
		// steps change the files, with one poll after each: none of them may be served before the last.
		steps func(t *testing.T, dir string) []func()
	}{{
		name:  "routes.yaml written in place, its last line after a poll",
		setup: flatFiles,
		steps: func(t *testing.T, dir string) []func() {
			return append([]func(){func() { writeTestFile(t, filepath.Join(dir, "secret"), "secret-two\n") }},
				writeInPlace(t, filepath.Join(dir, "routes.yaml"), settledRouteTwo, settledReject)...)
		},
	}, {
		name:  "routes.yaml truncated, then written",
		setup: flatFiles,
		steps: func(t *testing.T, dir string) []func() {
			return append([]func(){func() { writeTestFile(t, filepath.Join(dir, "secret"), "secret-two\n") }},
				writeInPlace(t, filepath.Join(dir, "routes.yaml"), "", settledRouteTwo+settledReject)...)
		},
	}, {
		name:  "the secret file routes.yaml names, written in place in two steps",
		setup: flatFiles,
		steps: func(t *testing.T, dir string) []func() {
			return append([]func(){func() { writeTestFile(t, filepath.Join(dir, "routes.yaml"), settledRouteTwo+settledReject) }},
				writeInPlace(t, filepath.Join(dir, "secret"), "secret-t", "wo\n")...)
		},
	}, {
		name:  "routes.yaml renamed into place",
		setup: flatFiles,
		steps: func(t *testing.T, dir string) []func() {
			return []func(){func() {
				writeTestFile(t, filepath.Join(dir, "secret.tmp"), "secret-two\n")
				writeTestFile(t, filepath.Join(dir, "routes.yaml.tmp"), settledRouteTwo+settledReject)
				require.NoError(t, os.Rename(filepath.Join(dir, "secret.tmp"), filepath.Join(dir, "secret")))
				require.NoError(t, os.Rename(filepath.Join(dir, "routes.yaml.tmp"), filepath.Join(dir, "routes.yaml")))
			}}
		},
	}, {
		name:  "a ConfigMap's ..data swapped",
		setup: configMapFiles,
		steps: func(t *testing.T, dir string) []func() {
			return []func(){func() {
				require.NoError(t, os.Mkdir(filepath.Join(dir, "..2026_01_02"), 0o755))
				writeTestFile(t, filepath.Join(dir, "..2026_01_02", "routes.yaml"), settledRouteTwo+settledReject)
				writeTestFile(t, filepath.Join(dir, "..2026_01_02", "secret"), "secret-two\n")
				require.NoError(t, os.Symlink("..2026_01_02", filepath.Join(dir, "..data_tmp")))
				require.NoError(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
				require.NoError(t, os.RemoveAll(filepath.Join(dir, "..2026_01_01")))
			}}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			r := newTestReloader(t, c.setup(t, dir), "", nil)
			require.Equal(t, "old", settledState(r.srv.Config()))
			ctx := context.Background()
			for i, step := range c.steps(t, dir) {
				step()
				r.poll(ctx)
				require.Equal(t, "old", settledState(r.srv.Config()), "after step %d and a poll", i+1)
			}
			r.poll(ctx)
			assert.Equal(t, "new", settledState(r.srv.Config()), "the second poll after the last step")
			assert.Equal(t, 1.0, r.reloads(t, "success"))
			assert.Zero(t, r.reloads(t, "failure"), "nothing refused on the way")
			r.poll(ctx)
			assert.Equal(t, 1.0, r.reloads(t, "success"), "and loaded once")
		})
	}
}
