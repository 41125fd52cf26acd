package architecture

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/tokenproxy/tokenproxy"

// rules are what the module's packages may depend on.
type rules struct {
	// layers are the module's packages from the top (programs) down, as design.md's table orders them: a
	// package imports only packages of lower layers, never one of its own layer or above. "" is the root.
	layers [][]string
	// testOnly are packages that hold nothing but tests: no layer, no importer.
	testOnly []string
	// unlinked are, for a package, the modules and packages it must not link, even through others: matched
	// as exact paths, a path's own packages included (yaml.v3 forbids gopkg.in/yaml.v3/x, never
	// gopkg.in/yaml.v2).
	unlinked map[string][]string
	// unimported are, for a package, the packages it must not import itself (it may link them through the
	// packages it does import).
	unimported map[string][]string
	// rootImports is all the root package may import.
	rootImports []string
	// testSupport is linked only by testHelpers, never by a program or a package of one.
	testSupport, testHelpers []string
}

var tokenproxy = rules{
	layers: [][]string{
		{"", "bench", "examples/quickstart"},
		{"internal/cli"},
		{"internal/app"},
		{"admin"},
		{"proxy", "check", "redisstore"},
		{"proxy/authheader"},
		{"config"},
		{"tokensource", "mitm", "secrets", "internal/runstate", "internal/logging", "internal/buildinfo", "internal/minproxy",
			"internal/testkit"},
		{"internal/hostname", "internal/hopbyhop", "internal/certgen"},
	},
	testOnly: []string{"test/architecture", "test/binary", "examples"},
	unlinked: map[string][]string{
		"internal/app": {"flag"}, // internal/cli turns flags into Settings
		// The CA's format is mitm's and a store URL's redisstore's; they come in through config.LoadOptions.
		"config":      {"github.com/elazarl/goproxy", "github.com/redis/go-redis/v9", module + "/mitm", module + "/redisstore"},
		"check":       {"github.com/elazarl/goproxy", "github.com/redis/go-redis/v9"},
		"tokensource": {"github.com/elazarl/goproxy", "github.com/redis/go-redis/v9", "gopkg.in/yaml.v3", "go.yaml.in/yaml/v3", "sigs.k8s.io/yaml"},
		"mitm":        {"github.com/elazarl/goproxy"},
		// check writes a route's headers here, and links no goproxy.
		"proxy/authheader": {"github.com/elazarl/goproxy"},
	},
	unimported: map[string][]string{
		// The command line knows nothing of serving: internal/app does.
		"internal/cli": {module + "/proxy", module + "/admin", module + "/redisstore", "github.com/elazarl/goproxy", "os/signal"},
	},
	rootImports: []string{"os", module + "/internal/cli"}, // main only calls the command line
	// The bench harness once linked testify through testkit.
	testSupport: []string{"testing", "github.com/stretchr/testify"},
	testHelpers: []string{"internal/testkit"},
}

// pkg is one package of the module as go list tells it.
type pkg struct {
	path    string   // relative to the module: "" for the root
	imports []string // direct imports, full paths
	deps    []string // everything it links, full paths
}

// Dependencies point one way (design.md): down the layers; main only calls the command line, which knows
// nothing of serving; and some packages link neither goproxy, the store's Redis client, a YAML parser nor
// what tests use.
func TestPackagesDependOneWay(t *testing.T) {
	pkgs := listPackages(t)
	known := knownPaths(t)
	var named []string
	for _, list := range tokenproxy.unlinked {
		named = append(named, list...)
	}
	for _, list := range tokenproxy.unimported {
		named = append(named, list...)
	}
	named = append(append(named, tokenproxy.testSupport...), tokenproxy.rootImports...)
	for _, path := range named {
		// An entry that names nothing in the build (a typo, a module left out) would never match.
		assert.True(t, known[path], "%s is neither a module of the build, a package of this module nor a standard package", path)
	}
	for _, v := range tokenproxy.violations(pkgs) {
		t.Error(v)
	}
}

// The rules catch what they are written for, on a module made up for the purpose: a forbidden module and
// its packages, an import upwards or sideways, a package in no layer, a forbidden import, and a root
// package that does more than call the command line; and they do not take a module that merely begins
// with the same letters for a forbidden one.
func TestTheRulesCatchWhatTheyForbid(t *testing.T) {
	r := rules{
		layers:      [][]string{{""}, {"app"}, {"proxy", "check"}, {"tokensource"}},
		unlinked:    map[string][]string{"tokensource": {"gopkg.in/yaml.v3", "github.com/redis/go-redis/v9"}},
		unimported:  map[string][]string{"app": {"os/signal"}},
		rootImports: []string{"os", module + "/app"},
		testSupport: []string{"testing"},
	}
	cases := []struct {
		name string
		pkg  pkg
		want string // "" when nothing is wrong
	}{
		{"a forbidden module", pkg{path: "tokensource", deps: []string{"gopkg.in/yaml.v3"}},
			"tokensource links gopkg.in/yaml.v3"},
		{"a package of a forbidden module", pkg{path: "tokensource", deps: []string{"github.com/redis/go-redis/v9/internal/pool"}},
			"tokensource links github.com/redis/go-redis/v9 (github.com/redis/go-redis/v9/internal/pool)"},
		{"another major version", pkg{path: "tokensource", deps: []string{"gopkg.in/yaml.v2"}}, ""},
		{"a longer name", pkg{path: "tokensource", deps: []string{"gopkg.in/yaml.v3x"}}, ""},
		{"an import upwards", pkg{path: "tokensource", imports: []string{module + "/check"}},
			"tokensource (layer 3) imports check (layer 2)"},
		{"an import sideways", pkg{path: "check", imports: []string{module + "/proxy"}},
			"check (layer 2) imports proxy (layer 2)"},
		{"an import downwards", pkg{path: "check", imports: []string{module + "/tokensource"}}, ""},
		{"a package in no layer", pkg{path: "newthing"}, "newthing is in no layer"},
		{"a program that links testing", pkg{path: "app", deps: []string{"testing"}}, "app links testing"},
		{"a forbidden import", pkg{path: "app", imports: []string{"os/signal"}}, "app imports os/signal"},
		{"a forbidden import, linked through another", pkg{path: "app", deps: []string{"os/signal"}}, ""},
		{"a root package that does more", pkg{path: "", imports: []string{"os", module + "/app", "fmt"}}, "the root package imports fmt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := r.violations([]pkg{c.pkg})
			if c.want == "" {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			assert.Contains(t, got[0], c.want)
		})
	}
}

// violations lists every way the packages break the rules.
func (r rules) violations(pkgs []pkg) []string {
	layerOf := map[string]int{}
	for i, l := range r.layers {
		for _, p := range l {
			layerOf[p] = i
		}
	}
	var out []string
	for _, p := range pkgs {
		if slices.Contains(r.testOnly, p.path) {
			continue
		}
		layer, ok := layerOf[p.path]
		if !ok {
			out = append(out, fmt.Sprintf("%s is in no layer: add it to layers, where design.md's table puts it", name(p.path)))
			continue
		}
		for _, imp := range p.imports {
			if rel, ours := relative(imp); ours {
				if l, ok := layerOf[rel]; ok && l <= layer {
					out = append(out, fmt.Sprintf("%s (layer %d) imports %s (layer %d): dependencies point down design.md's table",
						name(p.path), layer, name(rel), l))
				}
			}
			if slices.Contains(r.unimported[p.path], imp) || p.path == "" && r.rootImports != nil && !slices.Contains(r.rootImports, imp) {
				out = append(out, fmt.Sprintf("%s imports %s", name(p.path), imp))
			}
		}
		forbidden := r.unlinked[p.path]
		if !slices.Contains(r.testHelpers, p.path) {
			forbidden = append(slices.Clone(forbidden), r.testSupport...)
		}
		for _, f := range forbidden {
			if i := slices.IndexFunc(p.deps, func(dep string) bool { return dep == f || strings.HasPrefix(dep, f+"/") }); i >= 0 {
				out = append(out, fmt.Sprintf("%s links %s (%s)", name(p.path), f, p.deps[i]))
			}
		}
	}
	return out
}

// relative is a package path of this module relative to it ("" for the root), and whether it is one.
func relative(path string) (string, bool) {
	if path == module {
		return "", true
	}
	rel, ours := strings.CutPrefix(path, module+"/")
	return rel, ours
}

func name(rel string) string {
	if rel == "" {
		return "the root package"
	}
	return rel
}

// listPackages lists the module's packages with their imports and everything they link.
func listPackages(t *testing.T) []pkg {
	out := goCommand(t, "list", "-f", "{{.ImportPath}}|{{join .Imports \",\"}}|{{join .Deps \",\"}}", module+"/...")
	var pkgs []pkg
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		fields := strings.Split(line, "|")
		require.Len(t, fields, 3, line)
		rel := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		pkgs = append(pkgs, pkg{path: rel, imports: split(fields[1]), deps: split(fields[2])})
	}
	require.NotEmpty(t, pkgs)
	return pkgs
}

// knownPaths are the modules of the build, the standard library's packages and this module's.
func knownPaths(t *testing.T) map[string]bool {
	known := map[string]bool{}
	for _, line := range strings.Split(goCommand(t, "list", "-m", "all"), "\n") {
		if fields := strings.Fields(line); len(fields) > 0 {
			known[fields[0]] = true
		}
	}
	for _, p := range strings.Fields(goCommand(t, "list", "std", module+"/...")) {
		known[p] = true
	}
	return known
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func goCommand(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("go", args...).Output()
	require.NoError(t, err, "go %s", strings.Join(args, " "))
	return string(out)
}
