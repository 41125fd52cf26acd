package main

import (
	"fmt"
	"strings"
	"time"
)

// report collects the run's tables and the targets they are held to, and prints them as markdown.
type report struct {
	sections []string
	checks   []check
}

type check struct {
	what string
	ok   bool
	got  string
}

// table adds a section: a heading, a sentence on how it was measured, and the rows.
func (r *report) table(title, how string, header []string, rows [][]string) {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n%s\n\n", title, how)
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat(" --- |", len(header)))
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
	}
	r.sections = append(r.sections, b.String())
}

// note adds a paragraph to the last section.
func (r *report) note(format string, args ...any) {
	if len(r.sections) == 0 {
		r.sections = append(r.sections, "")
	}
	r.sections[len(r.sections)-1] += "\n" + fmt.Sprintf(format, args...) + "\n"
}

// target records whether a figure met its target.
func (r *report) target(what string, ok bool, format string, args ...any) {
	r.checks = append(r.checks, check{what: what, ok: ok, got: fmt.Sprintf(format, args...)})
}

func (r *report) markdown(header string) string {
	var b strings.Builder
	b.WriteString(header)
	for _, s := range r.sections {
		b.WriteString("\n" + s)
	}
	if len(r.checks) > 0 {
		b.WriteString("\n### Targets\n\n")
		for _, c := range r.checks {
			mark := "met"
			if !c.ok {
				mark = "**missed**"
			}
			fmt.Fprintf(&b, "- %s: %s (%s)\n", c.what, c.got, mark)
		}
	}
	return b.String()
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func count(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// ms prints a duration in milliseconds with the precision that matters at its size.
func ms(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0f ms", float64(d)/1e6)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
