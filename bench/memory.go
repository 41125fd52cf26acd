package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sample is what a process holds at one moment.
type sample struct {
	rss        int64
	heap       int64 // Go heap in use
	stacks     int64 // goroutine stacks in use
	fds        int
	goroutines int
}

func (tp *tokenproxy) sample() (sample, error) {
	var s sample
	var err error
	if s.rss, err = tp.rss(); err != nil {
		return s, err
	}
	if s.fds, err = tp.fds(); err != nil {
		return s, err
	}
	m, err := scrape(tp.admin, "go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes")
	s.goroutines, s.heap, s.stacks = int(m["go_goroutines"]), int64(m["go_memstats_heap_inuse_bytes"]), int64(m["go_memstats_stack_inuse_bytes"])
	return s, err
}

// scrape reads unlabelled gauges from the admin /metrics.
func scrape(admin string, names ...string) (map[string]float64, error) {
	resp, err := plainClient.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	got := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		for _, n := range names {
			if ok && name == n {
				got[n], _ = strconv.ParseFloat(value, 64)
			}
		}
	}
	for _, n := range names {
		if _, ok := got[n]; !ok {
			return got, fmt.Errorf("no %s in /metrics", n)
		}
	}
	return got, sc.Err()
}

// plainClient never goes through a proxy, whatever the environment says.
var plainClient = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}

// settle waits until goroutines and file descriptors are back within a few of base, for up to 15 s.
func (tp *tokenproxy) settle(base sample) (sample, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, err := tp.sample()
		if err != nil || (s.goroutines <= base.goroutines+2 && s.fds <= base.fds+2) || time.Now().After(deadline) {
			return s, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// holdOpen opens n connections to t and sends one request on each, leaving them open.
func holdOpen(t *target, n int) ([]*conn, error) {
	conns := make([]*conn, 0, n)
	for range n {
		c, err := t.dial()
		if err == nil {
			err = c.do()
		}
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("%s: connection %d: %w", t.name, len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func closeAll(conns []*conn) {
	for _, c := range conns {
		c.close()
	}
}

// churn opens n connections to t, workers at a time, each for one request.
func churn(t *target, n, workers int) error {
	var next sync.Mutex
	var firstErr error
	left := n
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				if left == 0 || firstErr != nil {
					next.Unlock()
					return
				}
				left--
				next.Unlock()
				if err := t.once(); err != nil {
					next.Lock()
					firstErr = fmt.Errorf("%s: %w", t.name, err)
					next.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// memory measures a fresh tokenproxy idle, holding 1,000 kept-alive connections of each kind, and after
// 10,000 connections of each kind opened and closed.
func memory(f *fixture, rep *report, keepAlive, churned int) error {
	tp, err := f.startTokenproxy("tokenproxy-memory", "info")
	if err != nil {
		return err
	}
	defer tp.stop()
	plain := &target{name: "plain, matched", proxy: tp.addr, host: f.matched}
	intercepted := &target{name: "intercepted", proxy: tp.addr, host: f.secure, tls: f.viaCA, fresh: true}
	tunnel := &target{name: "tunnel, no route", proxy: tp.addr, host: f.other, tunnel: true, fresh: true}
	// The baseline is taken once the upstream pool has the connections ten concurrent apps need: those
	// stay pooled (idle, bounded per host) and are no leak.
	for _, t := range []*target{plain, intercepted, tunnel} {
		if err := churn(t, 100, 10); err != nil {
			return err
		}
	}
	base, err := tp.settle(sample{goroutines: 1 << 30})
	if err != nil {
		return err
	}
	rows := [][]string{row("idle, after 100 requests of each kind, 10 at a time", base)}
	backAtBase := true
	after := func(what string) error {
		s, err := tp.settle(base)
		if err != nil {
			return err
		}
		if s.goroutines > base.goroutines+2 || s.fds > base.fds+2 {
			backAtBase = false
		}
		rows = append(rows, row(what, s))
		return nil
	}
	var heldRSS int64
	for _, t := range []*target{plain, {name: "intercepted", proxy: tp.addr, host: f.secure, tls: f.viaCA}} {
		conns, err := holdOpen(t, keepAlive)
		if err != nil {
			return err
		}
		s, err := tp.sample()
		if err != nil {
			closeAll(conns)
			return err
		}
		if t == plain {
			heldRSS = s.rss
		}
		rows = append(rows, row(fmt.Sprintf("holding %s kept-alive connections (%s)", count(float64(keepAlive)), t.name), s))
		closeAll(conns)
		if err := after("  … after they closed"); err != nil {
			return err
		}
	}
	for _, t := range []*target{intercepted, tunnel} {
		if err := churn(t, churned, 10); err != nil {
			return err
		}
		if err := after(fmt.Sprintf("after %s connections opened and closed (%s)", count(float64(churned)), t.name)); err != nil {
			return err
		}
	}
	rep.table("Memory and connections",
		"One tokenproxy process (log level info), read from /proc and its admin /metrics; after connections close, "+
			"the figures are read once goroutines and descriptors are back (at most 15 s later).",
		[]string{"state", "RSS", "Go heap in use", "goroutine stacks", "goroutines", "open fds"}, rows)
	rep.target(fmt.Sprintf("RSS ≤ 40 MB holding %s kept-alive connections", count(float64(keepAlive))),
		heldRSS <= 40e6, "%s (%.1f MB)", mib(heldRSS), float64(heldRSS)/1e6)
	rep.target("goroutines and descriptors back at baseline after each load", backAtBase,
		"baseline %d goroutines, %d fds", base.goroutines, base.fds)
	return nil
}

func row(what string, s sample) []string {
	return []string{what, mib(s.rss), mib(s.heap), mib(s.stacks), fmt.Sprint(s.goroutines), fmt.Sprint(s.fds)}
}
