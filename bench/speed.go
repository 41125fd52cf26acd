package main

import (
	"fmt"
	"time"
)

// speedRun holds the proxies measured side by side and the targets sent through them.
type speedRun struct {
	f       *fixture
	o       options
	info    *tokenproxy // logging at info, as deployed
	quiet   *tokenproxy // logging at error
	targets []*target
	left    []string // peers not measured, and why
}

// The rows the targets are computed from.
const (
	infoName    = "tokenproxy, matched route, log level info"
	quietName   = "tokenproxy, matched route, log level error"
	minimalName = "minimal net/http proxy"
	bareName    = "bare net/http proxy (fixed Authorization, no hop-by-hop scan, no log)"
	squidName   = "squid (forward proxy, caching off)"
)

func newSpeedRun(f *fixture, o options) (*speedRun, error) {
	s := &speedRun{f: f, o: o}
	var err error
	if s.info, err = f.startTokenproxy("tokenproxy-info", "info"); err != nil {
		return nil, err
	}
	if s.quiet, err = f.startTokenproxy("tokenproxy-error", "error"); err != nil {
		return nil, err
	}
	// The least a Go proxy that puts a token on requests does: the bar of the plain path's speed.
	bare, err := startRole("bare")
	if err != nil {
		return nil, err
	}
	f.track(bare)
	s.targets = []*target{
		{name: "direct", group: "direct", host: f.matched},
		{name: infoName, group: "direct", proxy: s.info.addr, host: f.matched},
		{name: quietName, group: "direct", proxy: s.quiet.addr, host: f.matched},
		{name: "tokenproxy, no route (pass-through)", group: "direct", proxy: s.info.addr, host: f.other},
		{name: minimalName, group: "direct", proxy: f.minimal.addrs[0], host: f.matched},
		{name: bareName, group: "direct", proxy: bare.addrs[0], host: f.matched},
	}
	if o.peers {
		for _, p := range peers {
			proc, why, err := startPeer(p, f.dir, f.matched)
			if err != nil {
				s.left = append(s.left, fmt.Sprintf("%s: %v", p.name, err))
				continue
			}
			if proc == nil {
				s.left = append(s.left, p.name+": "+why)
				continue
			}
			f.track(proc)
			s.targets = append(s.targets, &target{name: p.name + " (" + p.note + ")", group: "direct", proxy: proc.addrs[0], host: f.matched})
		}
	}
	s.targets = append(s.targets,
		&target{name: "direct HTTPS, keep-alive", group: "https", host: f.secure, tls: f.upTLS},
		&target{name: "tokenproxy intercepted HTTPS, keep-alive", group: "https", proxy: s.info.addr, host: f.secure, tls: f.viaCA},
		&target{name: "direct HTTPS, new connection per request", group: "https-new", host: f.secure, tls: f.upTLS, fresh: true},
		&target{name: "tokenproxy intercepted HTTPS, new connection per request", group: "https-new", proxy: s.info.addr, host: f.secure, tls: f.viaCA, fresh: true},
	)
	for _, t := range s.targets {
		if err := warm(t, 50); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *speedRun) find(name string) *target {
	for _, t := range s.targets {
		if t.name == name {
			return t
		}
	}
	return nil
}

// closedLoop measures every target for o.duration in each of o.rounds rounds, interleaved: the order
// rotates each round so that no target always runs first or last on a machine whose load drifts.
func (s *speedRun) closedLoop(rep *report) {
	res := make([]result, len(s.targets))
	for round := range s.o.rounds {
		for k := range s.targets {
			i := (k + round) % len(s.targets)
			res[i].add(closedLoop(s.targets[i], s.o.conns, s.o.duration))
		}
	}
	byName := map[string]*result{}
	for i, t := range s.targets {
		byName[t.name] = &res[i]
	}
	direct := map[string]float64{"direct": byName["direct"].rps(), "https": byName["direct HTTPS, keep-alive"].rps(),
		"https-new": byName["direct HTTPS, new connection per request"].rps()}
	minimal, bareRPS := byName[minimalName].rps(), byName[bareName].rps()
	var rows [][]string
	for i, t := range s.targets {
		r := &res[i]
		vsMinimal, vsBare := "–", "–"
		if t.group == "direct" {
			vsMinimal, vsBare = ratio(r.rps(), minimal), ratio(r.rps(), bareRPS)
		}
		errs := fmt.Sprint(r.errors)
		if r.errors > 0 {
			errs = fmt.Sprintf("%d (last: %v)", r.errors, r.lastErr)
		}
		rows = append(rows, []string{t.name, count(r.rps()), ratio(r.rps(), direct[t.group]), vsMinimal, vsBare,
			ms(r.percentile(50)), ms(r.percentile(99)), errs})
	}
	rep.table("Throughput, closed loop",
		fmt.Sprintf("%d connections each sending its next GET (1 KiB answer) when the last is answered, %s per target "+
			"in each of %d rounds, interleaved; × direct compares with direct plain HTTP, direct HTTPS keep-alive or "+
			"direct HTTPS with a new connection per request, whichever the row is a proxy for. The bare proxy only "+
			"deletes Proxy-Connection, sets a fixed Authorization and copies the answer.",
			s.o.conns, s.o.duration, s.o.rounds),
		[]string{"target", "req/s", "× direct", "× minimal proxy", "× bare proxy", "p50", "p99", "errors"}, rows)
	for _, l := range s.left {
		rep.note("Left out: %s.", l)
	}

	info := byName[infoName].rps()
	quiet := byName[quietName].rps()
	rep.target("matched plain HTTP at info ≥ 0.95× the minimal net/http proxy", info >= 0.95*minimal, "%s", ratio(info, minimal))
	rep.target("matched plain HTTP at info ≥ 1.0× the bare net/http proxy", info >= bareRPS, "%s", ratio(info, bareRPS))
	if sq, ok := byName[squidName]; ok {
		rep.target("matched plain HTTP at info ≥ 1.2× squid", info >= 1.2*sq.rps(), "%s", ratio(info, sq.rps()))
	}
	rep.target("logging a line per request costs ≤ ~5 % (info against error)", info >= 0.95*quiet, "info is %s of error", ratio(info, quiet))
	ka := byName["tokenproxy intercepted HTTPS, keep-alive"].rps()
	rep.target("intercepted HTTPS keep-alive ≥ 0.45× direct HTTPS", ka >= 0.45*direct["https"], "%s", ratio(ka, direct["https"]))
}

// fixedRate measures direct, tokenproxy and the minimal proxy at o.rate requests a second, interleaved
// over the rounds, and reports the latency each adds over direct.
func (s *speedRun) fixedRate(rep *report) {
	names := []string{"direct", infoName, minimalName,
		"direct HTTPS, keep-alive", "tokenproxy intercepted HTTPS, keep-alive"}
	res := make([]result, len(names))
	for round := range s.o.rounds {
		for k := range names {
			i := (k + round) % len(names)
			res[i].add(fixedRate(s.find(names[i]), s.o.rate, s.o.rateDuration, 16))
		}
	}
	var rows [][]string
	base := map[bool]*result{false: &res[0], true: &res[3]}
	for i, name := range names {
		r, d := &res[i], base[s.find(name).tls != nil]
		rows = append(rows, []string{name, count(float64(r.requests)), ms(r.percentile(50)), ms(r.percentile(99)),
			ms(r.percentile(99.9)), ms(r.percentile(100)), signedMs(r.percentile(99) - d.percentile(99)), fmt.Sprint(r.errors)})
	}
	rep.table("Latency at a fixed rate",
		fmt.Sprintf("%d requests a second for %s per target in each of %d rounds, interleaved, over 16 kept-alive connections; "+
			"each latency counts from the moment its request was due, so a stall cannot hide.", s.o.rate, s.o.rateDuration, s.o.rounds),
		[]string{"target", "requests", "p50", "p99", "p99.9", "max", "p99 over direct", "errors"}, rows)
	added := res[1].percentile(99) - res[0].percentile(99)
	rep.target(fmt.Sprintf("added p99 ≤ 1 ms over direct at %d req/s", s.o.rate), added <= time.Millisecond, "%s", signedMs(added))
}

func signedMs(d time.Duration) string {
	if d >= 0 {
		return "+" + ms(d)
	}
	return "−" + ms(-d)
}
