package config

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// nodeReader walks a parsed routes.yaml and collects every problem, each naming file, line and key.
// Messages quote the text as written in the file, never a value expanded from the environment.
type nodeReader struct {
	file     string
	problems []string
	lines    []int                       // the line of each problem
	lookup   func(string) (string, bool) // environment, for ${VAR}
	// syntaxOnly leaves ${VAR} unexpanded and values that hold one unchecked (validate -syntax-only).
	syntaxOnly bool
	// guessed holds, per mapping, the keys its unknown keys were taken to mean: a required key missing
	// because it was mistyped is reported once, as the unknown key that suggests it.
	guessed map[*yaml.Node]map[string]bool
}

func (r *nodeReader) problem(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if empty := r.emptyVars(n); len(empty) > 0 && !strings.Contains(msg, "set but empty") {
		// The text as written hides why it is wrong: a variable it names is empty.
		msg += " (" + setButEmpty(empty) + ")"
	}
	r.problems = append(r.problems, fmt.Sprintf("%s:%d: %s: %s", r.file, n.Line, path, msg))
	r.lines = append(r.lines, n.Line)
}

// sortedProblems returns the problems in the order of their lines, as an editor shows them.
func (r *nodeReader) sortedProblems() []string {
	order := make([]int, len(r.problems))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return r.lines[order[a]] < r.lines[order[b]] })
	sorted := make([]string, len(order))
	for i, o := range order {
		sorted[i] = r.problems[o]
	}
	return sorted
}

// emptyVars names the variables n's text refers to that are set but empty.
func (r *nodeReader) emptyVars(n *yaml.Node) []string {
	if r.syntaxOnly || n.Kind != yaml.ScalarNode {
		return nil
	}
	var empty []string
	for _, m := range envRef.FindAllStringSubmatch(n.Value, -1) {
		if v, ok := r.lookup(m[1]); m[1] != "" && ok && v == "" {
			empty = append(empty, m[1])
		}
	}
	return empty
}

func setButEmpty(names []string) string {
	if len(names) == 1 {
		return names[0] + " is set but empty"
	}
	return strings.Join(names, ", ") + " are set but empty"
}

// mapping calls the handler of each key of n and reports keys without one; it returns the keys seen.
func (r *nodeReader) mapping(n *yaml.Node, path string, handlers map[string]func(v *yaml.Node, path string)) map[string]*yaml.Node {
	seen := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		r.problem(n, path, "must be a mapping of keys to values")
		return seen
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		h, ok := handlers[k.Value]
		if !ok {
			if guess := closest(k.Value, handlers); guess != "" {
				r.problem(k, p, "unknown key; did you mean %s?", guess)
				if r.guessed == nil {
					r.guessed = map[*yaml.Node]map[string]bool{}
				}
				if r.guessed[n] == nil {
					r.guessed[n] = map[string]bool{}
				}
				r.guessed[n][guess] = true
			} else {
				r.problem(k, p, "unknown key")
			}
			continue
		}
		if first, dup := seen[k.Value]; dup {
			r.problem(k, p, "given twice (first on line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		h(v, p)
	}
	return seen
}

// require reports each key of keys that seen lacks, at the line of the mapping n, unless an unknown key
// of n was reported as meaning it.
func (r *nodeReader) require(n *yaml.Node, path string, seen map[string]*yaml.Node, keys ...string) {
	for _, k := range keys {
		if _, ok := seen[k]; !ok && !r.mistyped(n, k) {
			r.problem(n, path+"."+k, "required key is missing")
		}
	}
}

// mistyped reports whether an unknown key of the mapping n was reported as meaning one of keys.
func (r *nodeReader) mistyped(n *yaml.Node, keys ...string) bool {
	for _, k := range keys {
		if r.guessed[n][k] {
			return true
		}
	}
	return false
}

// envRef matches $${ (a literal "${") and ${VAR}.
var envRef = regexp.MustCompile(`\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// str reads a scalar string with ${VAR} expanded; an unset variable is a problem, never an empty value.
// $${ stands for a literal ${.
func (r *nodeReader) str(n *yaml.Node, path string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		r.problem(n, path, "must be a string")
		return ""
	}
	if r.syntaxOnly {
		return n.Value
	}
	return envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
		if ref == "$${" {
			return "${"
		}
		name := ref[2 : len(ref)-1]
		v, ok := r.lookup(name)
		if !ok {
			r.problem(n, path, "environment variable %s is not set", name)
		}
		return v
	})
}

// opaque reports whether n's value cannot be checked now: it refers to a variable that validate
// -syntax-only does not look up.
func (r *nodeReader) opaque(n *yaml.Node) bool {
	if !r.syntaxOnly {
		return false
	}
	for _, m := range envRef.FindAllStringSubmatch(n.Value, -1) {
		if m[1] != "" {
			return true
		}
	}
	return false
}

// nonEmpty reads a string that must not be empty once expanded.
func (r *nodeReader) nonEmpty(n *yaml.Node, path string) string {
	before := len(r.problems)
	v := r.str(n, path)
	if v != "" || len(r.problems) > before { // an unset variable was reported already
		return v
	}
	if empty := r.emptyVars(n); len(empty) > 0 {
		r.problem(n, path, "%s", setButEmpty(empty))
	} else {
		r.problem(n, path, "must not be empty")
	}
	return v
}

// oneOf reads a string that must be one of allowed.
func (r *nodeReader) oneOf(n *yaml.Node, path string, allowed ...string) string {
	v := r.str(n, path)
	if r.opaque(n) {
		return allowed[0]
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	if n.Kind == yaml.ScalarNode {
		r.problem(n, path, "%q is not one of %s", n.Value, strings.Join(allowed, " | "))
	}
	return ""
}

func (r *nodeReader) boolean(n *yaml.Node, path string) bool {
	v := strings.ToLower(r.str(n, path))
	switch {
	case v == "true":
		return true
	case v == "false", r.opaque(n):
		return false
	}
	if n.Kind == yaml.ScalarNode {
		r.problem(n, path, "must be true or false")
	}
	return false
}

// list reads a sequence of strings; each item's line is passed to each so it can report its own.
func (r *nodeReader) list(n *yaml.Node, path string, each func(v string, item *yaml.Node, path string)) {
	if n.Kind != yaml.SequenceNode {
		r.problem(n, path, "must be a list")
		return
	}
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		each(r.str(item, p), item, p)
	}
}

// stringMap reads a mapping of strings to strings, with ${VAR} expanded in the values. A value that
// refers to a variable set but empty is a problem: these values (API keys, token-request fields) go to a
// supplier as they are, where an empty one would go unnoticed.
func (r *nodeReader) stringMap(n *yaml.Node, path string) map[string]string {
	m := map[string]string{}
	if n.Kind != yaml.MappingNode {
		r.problem(n, path, "must be a mapping of names to values")
		return m
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		m[k] = r.str(v, path+"."+k)
		if empty := r.emptyVars(v); len(empty) > 0 {
			r.problem(v, path+"."+k, "%s", setButEmpty(empty))
		}
	}
	return m
}

// duration reads a Go duration ("90s", "15m", "1h") or a number of seconds.
func (r *nodeReader) duration(n *yaml.Node, path string) time.Duration {
	s := r.str(n, path)
	if r.opaque(n) {
		return 0
	}
	if secs, err := strconv.Atoi(s); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		if n.Kind == yaml.ScalarNode {
			r.problem(n, path, "%q is not a positive duration like 90s, 15m or 1h", n.Value)
		}
		return 0
	}
	return d
}

// size reads a byte count: a number, or one with a KiB/MiB suffix.
func (r *nodeReader) size(n *yaml.Node, path string) int64 {
	s := r.str(n, path)
	if r.opaque(n) {
		return 0
	}
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20} {
		if rest, ok := strings.CutSuffix(s, suffix); ok {
			s, mult = strings.TrimSpace(rest), m
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		if n.Kind == yaml.ScalarNode {
			r.problem(n, path, "%q is not a size like 65536, 512KiB or 1MiB", n.Value)
		}
		return 0
	}
	return v * mult
}

// closest returns the known key a mistyped one most probably meant, or "".
func closest[V any](key string, known map[string]V) string {
	best, bestDist := "", 3 // at most two edits away
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	sort.Strings(names) // ties go to the first name, the same every time
	for _, k := range names {
		if strings.EqualFold(k, key) {
			return k
		}
		if d := editDistance(strings.ToLower(key), strings.ToLower(k)); d < bestDist && d < len(k)/2+1 {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
