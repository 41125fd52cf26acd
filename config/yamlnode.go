package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// nodeReader walks a parsed routes.yaml and collects every problem, each naming file, line and key.
type nodeReader struct {
	file     string
	problems []string
	lookup   func(string) (string, bool) // environment, for ${VAR}
}

func (r *nodeReader) problem(n *yaml.Node, path, format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf("%s:%d: %s: %s", r.file, n.Line, path, fmt.Sprintf(format, args...)))
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
			r.problem(k, p, "unknown key")
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

// require reports each key of keys that seen lacks, at the line of the mapping n.
func (r *nodeReader) require(n *yaml.Node, path string, seen map[string]*yaml.Node, keys ...string) {
	for _, k := range keys {
		if _, ok := seen[k]; !ok {
			r.problem(n, path+"."+k, "required key is missing")
		}
	}
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// str reads a scalar string with ${VAR} expanded; an unset variable is a problem, never an empty value.
func (r *nodeReader) str(n *yaml.Node, path string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		r.problem(n, path, "must be a string")
		return ""
	}
	return envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
		name := ref[2 : len(ref)-1]
		v, ok := r.lookup(name)
		if !ok {
			r.problem(n, path, "environment variable %s is not set", name)
		}
		return v
	})
}

// nonEmpty reads a string that must not be empty once expanded.
func (r *nodeReader) nonEmpty(n *yaml.Node, path string) string {
	before := len(r.problems)
	v := r.str(n, path)
	if v == "" && len(r.problems) == before { // an unset variable was reported already
		r.problem(n, path, "must not be empty")
	}
	return v
}

// oneOf reads a string that must be one of allowed.
func (r *nodeReader) oneOf(n *yaml.Node, path string, allowed ...string) string {
	v := r.str(n, path)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	if n.Kind == yaml.ScalarNode {
		r.problem(n, path, "%q is not one of %s", v, strings.Join(allowed, " | "))
	}
	return ""
}

func (r *nodeReader) boolean(n *yaml.Node, path string) bool {
	switch strings.ToLower(r.str(n, path)) {
	case "true":
		return true
	case "false":
		return false
	}
	if n.Kind == yaml.ScalarNode {
		r.problem(n, path, "must be true or false")
	}
	return false
}

// strings reads a sequence of strings; each item's line is passed to each so it can report its own.
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

// stringMap reads a mapping of strings to strings, with ${VAR} expanded in the values.
func (r *nodeReader) stringMap(n *yaml.Node, path string) map[string]string {
	m := map[string]string{}
	if n.Kind != yaml.MappingNode {
		r.problem(n, path, "must be a mapping of names to values")
		return m
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		m[k] = r.str(n.Content[i+1], path+"."+k)
	}
	return m
}

// duration reads a Go duration ("90s", "15m", "1h") or a number of seconds.
func (r *nodeReader) duration(n *yaml.Node, path string) time.Duration {
	s := r.str(n, path)
	if secs, err := strconv.Atoi(s); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		if n.Kind == yaml.ScalarNode {
			r.problem(n, path, "%q is not a positive duration like 90s, 15m or 1h", s)
		}
		return 0
	}
	return d
}

// size reads a byte count: a number, or one with a KiB/MiB suffix.
func (r *nodeReader) size(n *yaml.Node, path string) int64 {
	s := r.str(n, path)
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
