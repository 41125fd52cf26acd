package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// fleetKey is the secret key every sidecar of the fleet shares (base64 of 32 bytes); a bench value.
const fleetKey = "TOKENPROXY_SECRET_KEY=YmVuY2gtZmxlZXQta2V5LTMyLWJ5dGVzLWxvbmchISE="

// fleetOptions size the fleet part.
type fleetOptions struct {
	sidecars int
	requests int           // spread over the sidecars, burstConcurrency at a time
	lifetime time.Duration // of the tokens in the long run
	length   time.Duration // of the long run
}

// sidecarFleet is n tokenproxy processes with one route to a supplier through one token endpoint, with or
// without a shared store.
type sidecarFleet struct {
	f        *fixture
	name     string
	top      string // the store: line, or ""
	routes   string
	members  []*tokenproxy
	clients  []*http.Client
	restarts int
}

func startFleet(f *fixture, name, store string, n int, tokenURL, supplier string) (*sidecarFleet, error) {
	fl := &sidecarFleet{f: f, name: name, routes: fmt.Sprintf(`
  - name: fleet
    hosts: ["%s"]
    tokenUrl: %s
    clientId: fleet
    clientSecret: fleet-secret
`, supplier, tokenURL)}
	if store != "" {
		fl.top = "store: " + store + "\n"
	}
	fl.members, fl.clients = make([]*tokenproxy, n), make([]*http.Client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fl.start(i) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			fl.stop()
			return nil, err
		}
	}
	return fl, nil
}

// start runs sidecar i (again, after a restart).
func (fl *sidecarFleet) start(i int) error {
	tp, err := fl.f.runTokenproxyWith(fmt.Sprintf("%s-%d-%d", fl.name, i, fl.restarts), "warn", fl.top, fl.routes, []string{fleetKey})
	if err != nil {
		return err
	}
	fl.members[i] = tp
	fl.clients[i] = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyURL(mustURL("http://" + tp.addr)), MaxIdleConnsPerHost: burstConcurrency}}
	return nil
}

func (fl *sidecarFleet) stop() {
	for _, m := range fl.members {
		if m != nil {
			m.stop()
		}
	}
}

// send makes n requests, request i through sidecar i mod the fleet's size, concurrency at a time, and
// returns how many did not get a 200.
func (fl *sidecarFleet) send(url string, n, concurrency int) int {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				resp, err := fl.clients[i%len(fl.clients)].Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return int(failed.Load())
}

// fleetRun is what one fleet scenario cost the token endpoint and gave the apps.
type fleetRun struct {
	fetches, restartFetches int64
	failed                  int
}

// withFleet starts a token endpoint issuing tokens of lifetime seconds, a supplier and a fleet of
// o.sidecars for them, and runs load against it: url is the supplier's, through any sidecar.
func withFleet(f *fixture, o fleetOptions, name, store string, lifetime int,
	load func(fl *sidecarFleet, url string, te *tokenEndpoint) (fleetRun, error)) (fleetRun, error) {
	te, err := startTokenEndpoint(&scenario{expiresIn: lifetime})
	if err != nil {
		return fleetRun{}, err
	}
	defer te.close()
	sup, addr, err := startSupplier(&scenario{supplier: accept})
	if err != nil {
		return fleetRun{}, err
	}
	defer sup.Close()
	fl, err := startFleet(f, name, store, o.sidecars, te.url(), addr)
	if err != nil {
		return fleetRun{}, err
	}
	defer fl.stop()
	return load(fl, "http://"+addr+"/", te)
}

// fleetBurst sends o.requests over a cold fleet, then restarts every sidecar in turn, sending a request
// through each replacement.
func fleetBurst(f *fixture, o fleetOptions, name, store string) (fleetRun, error) {
	return withFleet(f, o, name, store, 3600, func(fl *sidecarFleet, url string, te *tokenEndpoint) (fleetRun, error) {
		var out fleetRun
		out.failed = fl.send(url, o.requests, burstConcurrency)
		out.fetches = te.hits.Load()
		fl.restarts++
		for i := range fl.members {
			fl.members[i].stop()
			if err := fl.start(i); err != nil {
				return out, err
			}
			out.failed += fl.send(url, len(fl.members), len(fl.members))
		}
		out.restartFetches = te.hits.Load() - out.fetches
		return out, nil
	})
}

// fleetLong sends a request a second through each sidecar for o.length, with o.lifetime tokens.
func fleetLong(f *fixture, o fleetOptions, name, store string) (fleetRun, error) {
	return withFleet(f, o, name, store, int(o.lifetime.Seconds()), func(fl *sidecarFleet, url string, te *tokenEndpoint) (fleetRun, error) {
		var out fleetRun
		ctx, cancel := context.WithTimeout(context.Background(), o.length)
		defer cancel()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			out.failed += fl.send(url, len(fl.members), len(fl.members))
			select {
			case <-ctx.Done():
				out.fetches = te.hits.Load()
				return out, nil
			case <-tick.C:
			}
		}
	})
}

// startRedis runs a redis-server of the harness's own on loopback, without persistence.
func startRedis(f *fixture) (string, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	_, port, _ := net.SplitHostPort(addr)
	p, err := startCommand("redis", addr, "", nil, "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err != nil {
		return "", err
	}
	f.track(p)
	return addr, nil
}

// fleetPart measures the token requests of a fleet of sidecars with a shared Redis and without.
func fleetPart(f *fixture, rep *report, o fleetOptions) error {
	if _, err := exec.LookPath("redis-server"); err != nil {
		rep.note("Fleet: redis-server is not installed (Debian package redis-server), so the fleet part was left out.")
		return nil
	}
	redisAddr, err := startRedis(f)
	if err != nil {
		return err
	}
	store := "redis://" + redisAddr + "/0"
	shared, err := fleetBurst(f, o, "burst-shared", store)
	if err != nil {
		return err
	}
	own, err := fleetBurst(f, o, "burst-own", "")
	if err != nil {
		return err
	}
	// The long runs side by side: they are light, and minutes long.
	var longShared, longOwn fleetRun
	var errShared, errOwn error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); longShared, errShared = fleetLong(f, o, "long-shared", store) }()
	go func() { defer wg.Done(); longOwn, errOwn = fleetLong(f, o, "long-own", "") }()
	wg.Wait()
	if errShared != nil {
		return errShared
	}
	if errOwn != nil {
		return errOwn
	}
	renewals := o.length.Seconds()/(o.lifetime.Seconds()*0.8) + 1
	rows := [][]string{
		{fmt.Sprintf("%s requests over %d cold sidecars, %d at a time", count(float64(o.requests)), o.sidecars, burstConcurrency),
			fmt.Sprint(shared.fetches), fmt.Sprint(own.fetches), "1"},
		{fmt.Sprintf("then a rolling restart of all %d, a request through each replacement", o.sidecars),
			fmt.Sprint(shared.restartFetches), fmt.Sprint(own.restartFetches), "0"},
		{fmt.Sprintf("%s tokens for %s, a request a second through each sidecar", o.lifetime, o.length),
			fmt.Sprint(longShared.fetches), fmt.Sprint(longOwn.fetches), fmt.Sprintf("one per renewal (at 80 %%): ~%.0f", renewals)},
	}
	failed := shared.failed + own.failed + longShared.failed + longOwn.failed
	rep.table("Fleet: sidecars sharing tokens through Redis",
		fmt.Sprintf("%d tokenproxy processes, each its own sidecar, with `store: redis://…` on one redis-server and without; "+
			"token requests counted at the token endpoint. App requests that did not get a 200: %d.", o.sidecars, failed),
		[]string{"scenario", "token requests, shared store", "without", "target with the store"}, rows)
	rep.target(fmt.Sprintf("fleet of %d, a burst over it cold: one token request", o.sidecars), shared.fetches == 1,
		"%d (without the store: %d)", shared.fetches, own.fetches)
	rep.target("fleet rolling restart: no token request", shared.restartFetches == 0,
		"%d (without the store: %d)", shared.restartFetches, own.restartFetches)
	rep.target("fleet long run: one token request per renewal for the whole fleet", float64(longShared.fetches) <= renewals+1,
		"%d for ~%.0f renewals (without the store: %d)", longShared.fetches, renewals, longOwn.fetches)
	rep.target("fleet: every app request answered", failed == 0, "%d failed", failed)
	return nil
}
