// Command bench measures tokenproxy side by side with direct connections, a minimal net/http forward
// proxy and the proxies people would use instead (squid, tinyproxy and haproxy, when installed), and its
// token economy against golang.org/x/oauth2, in one run on loopback. It prints a markdown report:
//
//	go run ./bench -out bench/RESULTS.md
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

type options struct {
	rounds       int
	duration     time.Duration // closed loop, per target and round
	conns        int
	rate         int
	rateDuration time.Duration // fixed rate, per target and round
	economyFor   time.Duration
	burst        int
	keepAlive    int // connections held open for the memory figures
	churned      int // connections opened and closed for the memory figures
	allocsN      int
	stallStreams int // answers the apps that read nothing hold open
	peers        bool
	fleet        fleetOptions
	only         map[string]bool
	out          string
	command      string // as the report prints it
}

func (o options) want(part string) bool { return len(o.only) == 0 || o.only[part] }

var parts = []string{"speed", "rate", "memory", "stall", "allocs", "economy", "fleet"}

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	var o options
	var only string
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of every closed-loop and fixed-rate target, interleaved")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "closed loop: time per target in each round")
	flag.IntVar(&o.conns, "conns", 10, "closed loop: connections")
	flag.IntVar(&o.rate, "rate", 1000, "fixed rate: requests a second")
	flag.DurationVar(&o.rateDuration, "rate-duration", 10*time.Second, "fixed rate: time per target in each round")
	flag.DurationVar(&o.economyFor, "economy-duration", time.Minute, "token economy: length of the steady scenarios")
	flag.IntVar(&o.burst, "burst", 10000, "token economy: requests in the burst scenario")
	flag.IntVar(&o.fleet.sidecars, "fleet-sidecars", 20, "fleet: sidecar processes sharing one Redis")
	flag.IntVar(&o.fleet.requests, "fleet-requests", 10000, "fleet: requests in the burst over the cold fleet")
	flag.DurationVar(&o.fleet.lifetime, "fleet-lifetime", time.Minute, "fleet: token lifetime in the long run")
	flag.DurationVar(&o.fleet.length, "fleet-duration", 10*time.Minute, "fleet: length of the long run")
	flag.IntVar(&o.keepAlive, "keepalive", 1000, "memory: kept-alive connections held open")
	flag.IntVar(&o.churned, "churn", 10000, "memory: connections of each kind opened and closed")
	flag.IntVar(&o.allocsN, "allocs-requests", 20000, "allocations: requests per benchmark")
	flag.IntVar(&o.stallStreams, "stall-streams", 250, "stall: answers held open by apps that read nothing, of each kind")
	flag.BoolVar(&o.peers, "peers", true, "measure squid, tinyproxy and haproxy when installed")
	flag.StringVar(&only, "only", "", "comma-separated parts to run: "+strings.Join(parts, ", ")+" (default all)")
	flag.StringVar(&o.out, "out", "", "also write the report to this file")
	flag.Parse()
	if only != "" {
		o.only = map[string]bool{}
		for _, p := range strings.Split(only, ",") {
			o.only[strings.TrimSpace(p)] = true
		}
	}
	o.command = strings.TrimSpace("go run ./bench " + strings.Join(os.Args[1:], " "))
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options, w io.Writer) error {
	rep, err := measure(o)
	if err != nil {
		return err
	}
	header := fmt.Sprintf("## tokenproxy bench, %s\n\n%d cores (%s), %s, loopback only. Command: `%s`\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOARCH, runtime.Version(), o.command)
	md := rep.markdown(header)
	if _, err := io.WriteString(w, md); err != nil {
		return err
	}
	if o.out != "" {
		return os.WriteFile(o.out, []byte(md), 0o644)
	}
	return nil
}

// measure runs the parts o wants against a fixture of its own and returns their report.
func measure(o options) (*report, error) {
	for p := range o.only {
		if !slices.Contains(parts, p) {
			return nil, fmt.Errorf("-only %s: want some of %s", p, strings.Join(parts, ", "))
		}
	}
	dir, err := os.MkdirTemp("", "tokenproxy-bench")
	if err != nil {
		return nil, err
	}
	if os.Getenv("TOKENPROXY_BENCH_KEEP") == "" { // set it to keep the processes' configs and logs
		defer os.RemoveAll(dir)
	} else {
		fmt.Fprintln(os.Stderr, "bench: keeping", dir)
	}
	f, err := newFixture(dir)
	if err != nil {
		return nil, err
	}
	defer f.close()
	rep := &report{}
	started := time.Now()
	progress := func(what string) {
		fmt.Fprintf(os.Stderr, "bench: %s (%s)\n", what, time.Since(started).Round(time.Second))
	}

	if o.want("speed") || o.want("rate") {
		s, err := newSpeedRun(f, o)
		if err != nil {
			return nil, err
		}
		if o.want("speed") {
			progress("closed loop")
			s.closedLoop(rep)
		}
		if o.want("rate") {
			progress("fixed rate")
			s.fixedRate(rep)
		}
	}
	if o.want("memory") {
		progress("memory")
		if err := memory(f, rep, o.keepAlive, o.churned); err != nil {
			return nil, err
		}
	}
	if o.want("stall") {
		progress("apps that read nothing")
		if err := stall(f, rep, o.stallStreams); err != nil {
			return nil, err
		}
	}
	if o.want("allocs") {
		progress("allocations")
		if err := allocations(f, rep, o.allocsN); err != nil {
			return nil, err
		}
	}
	if o.want("fleet") {
		progress("fleet")
		if err := fleetPart(f, rep, o.fleet); err != nil {
			return nil, err
		}
	}
	if o.want("economy") {
		progress("token economy")
		if err := economy(f, rep, o.economyFor, o.burst); err != nil {
			return nil, err
		}
	}
	progress("done")
	return rep, nil
}
