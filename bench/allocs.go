package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// benchLine is one result line of go test -bench -benchmem.
type benchLine struct {
	ns, bytes, allocs float64
}

var benchResult = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op\s+([\d.]+) B/op\s+([\d.]+) allocs/op`)

// goBench runs the proxy package's benchmarks matching pattern with -benchmem and reads their results.
func goBench(root, pattern string, n int) (map[string]benchLine, error) {
	cmd := exec.Command("go", "test", "./proxy", "-run", "^$", "-bench", pattern, "-benchmem", "-benchtime", fmt.Sprintf("%dx", n), "-count", "1")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test -bench %s: %v\n%s", pattern, err, out)
	}
	got := map[string]benchLine{}
	for _, line := range strings.Split(string(out), "\n") {
		m := benchResult.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var b benchLine
		b.ns, _ = strconv.ParseFloat(m[2], 64)
		b.bytes, _ = strconv.ParseFloat(m[3], 64)
		b.allocs, _ = strconv.ParseFloat(m[4], 64)
		got[m[1]] = b
	}
	return got, nil
}

// allocations reports what tokenproxy and the minimal proxy allocate per request, as the whole process's
// allocations less those of the same request sent direct (client and upstream are in the process too).
func allocations(f *fixture, rep *report, n int) error {
	got, err := goBench(f.root, "^(BenchmarkMatchedRequest|BenchmarkGoproxyFixedCost)$", n)
	if err != nil {
		return err
	}
	direct, okD := got["BenchmarkMatchedRequest/direct"]
	tp, okT := got["BenchmarkMatchedRequest/tokenproxy"]
	minimal, okM := got["BenchmarkMatchedRequest/minimal"]
	if !okD || !okT || !okM {
		return fmt.Errorf("BenchmarkMatchedRequest gave %v", got)
	}
	rows := [][]string{
		{"direct (client and upstream only)", fmt.Sprint(direct.allocs), count(direct.bytes), "–"},
		{"tokenproxy, matched route, cached token, log level info", fmt.Sprint(tp.allocs), count(tp.bytes), fmt.Sprint(tp.allocs - direct.allocs)},
		{"minimal net/http proxy", fmt.Sprint(minimal.allocs), count(minimal.bytes), fmt.Sprint(minimal.allocs - direct.allocs)},
	}
	fixed, okF := got["BenchmarkGoproxyFixedCost"]
	if !okF {
		return fmt.Errorf("BenchmarkGoproxyFixedCost gave %v", got)
	}
	rows = append(rows, []string{"of which goproxy's fixed cost: log arguments never printed, lower-case header look-ups",
		"–", "–", fmt.Sprint(fixed.allocs)})
	rep.table("Allocations per request",
		fmt.Sprintf("go test ./proxy -bench 'MatchedRequest|GoproxyFixedCost' -benchmem -benchtime %dx: one kept-alive client, "+
			"process-wide counts, so the proxy's own is a row less direct.", n),
		[]string{"path", "allocs/op", "B/op", "the proxy's own allocs"}, rows)
	own, floor := tp.allocs-direct.allocs, minimal.allocs-direct.allocs
	rep.target("allocations per matched request ≤ the minimal proxy's + 5", own <= floor+5, "%.0f against %.0f", own, floor)
	rep.target("the same, goproxy's fixed cost set aside (it cannot be switched off without forking goproxy)",
		own-fixed.allocs <= floor+5, "%.0f − %.0f against %.0f", own, fixed.allocs, floor)
	return nil
}
