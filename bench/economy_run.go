package main

import (
	"fmt"
	"net/url"
	"sync"
	"time"
)

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// economy runs every scenario on both sides: the burst first and alone, then the steady ones together for
// length, each with a token endpoint, a supplier and (for tokenproxy) a proxy of its own.
func economy(f *fixture, rep *report, length time.Duration, burst int) error {
	scenarios := []*scenario{
		{name: fmt.Sprintf("%s requests, %d at a time, 60 s tokens", count(float64(burst)), burstConcurrency), expiresIn: 60, supplier: accept, burst: burst},
		{name: "token endpoint down (takes connections and closes them), 20 req/s", dead: true, expiresIn: 60, supplier: accept, rate: 20},
		{name: "token endpoint answering in 300 ms, 20 s tokens, 50 req/s", latency: 300 * time.Millisecond, expiresIn: 20, supplier: accept, rate: 50},
		{name: "the same with the token endpoint answering at once (the cached case)", expiresIn: 20, supplier: accept, rate: 50},
		{name: "5 s tokens, 20 req/s", expiresIn: 5, supplier: accept, rate: 20},
		{name: "supplier refusing every token, 20 req/s", expiresIn: 3600, supplier: refuseAll, rate: 20},
		{name: "token revoked right after issue (the first token refused), 1 h tokens, 20 req/s", expiresIn: 3600, supplier: revokedFirst, rate: 20},
	}
	tp := make([]outcome, len(scenarios))
	xo := make([]outcome, len(scenarios))
	errs := make([]error, 2*len(scenarios))
	var wg sync.WaitGroup
	run := func(i int) {
		wg.Add(2)
		go func() { defer wg.Done(); tp[i], errs[2*i] = viaTokenproxy(f, scenarios[i], i, length) }()
		go func() { defer wg.Done(); xo[i], errs[2*i+1] = viaOAuth2(scenarios[i], length) }()
	}
	run(0)
	wg.Wait()
	for i := 1; i < len(scenarios); i++ {
		run(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}

	var rows [][]string
	for i, sc := range scenarios {
		latency := func(o outcome) string {
			if len(o.lat) == 0 {
				return "–"
			}
			return fmt.Sprintf("%s (%d)", ms(o.p99()), o.slower(250*time.Millisecond))
		}
		rows = append(rows, []string{sc.name, fmt.Sprint(tp[i].hits), fmt.Sprint(xo[i].hits),
			fmt.Sprintf("%d of %d", tp[i].failures, tp[i].requests), fmt.Sprintf("%d of %d", xo[i].failures, xo[i].requests),
			latency(tp[i]), latency(xo[i])})
	}
	rep.table("Token economy: tokenproxy against golang.org/x/oauth2",
		fmt.Sprintf("Each scenario runs twice in the same run, each side with a token endpoint and a supplier of its own: "+
			"through tokenproxy, and through x/oauth2's clientcredentials TokenSource in an oauth2.Transport over a plain "+
			"http.Transport. One request first warms each side up and is not counted; the steady scenarios run together "+
			"for %s, latency counted from each request's due time. Token requests include the warm-up's.", length),
		[]string{"scenario", "token requests: tokenproxy", "x/oauth2", "app requests failed: tokenproxy", "x/oauth2",
			"p99 (requests over 250 ms): tokenproxy", "x/oauth2"}, rows)

	minutes := length.Minutes()
	rep.target(scenarios[0].name+": 1 token request", tp[0].hits == 1, "%d", tp[0].hits)
	rep.target("token endpoint down: single digits, bounded by the backoff", tp[1].hits <= 9, "%d in %s", tp[1].hits, length)
	slow, cached := tp[2], tp[3]
	rep.target("token endpoint at 300 ms: once warm no request waits, p99 as in the cached case",
		slow.slower(250*time.Millisecond) == 0 && slow.p99() <= cached.p99()+2*time.Millisecond,
		"p99 %s against %s cached, %d requests over 250 ms", ms(slow.p99()), ms(cached.p99()), slow.slower(250*time.Millisecond))
	rep.target("5 s tokens: one token request per 4 s of use (renewed at 80 % of the lifetime)",
		float64(tp[4].hits) <= length.Seconds()/4+2, "%d in %s", tp[4].hits, length)
	rep.target("supplier refusing every token: at most ~10 token requests a minute",
		float64(tp[5].hits) <= 10*max(minutes, 1), "%d in %s", tp[5].hits, length)
	rep.target("token revoked right after issue: costs the app nothing", tp[6].failures == 0,
		"%d of %d failed", tp[6].failures, tp[6].requests)
	return nil
}
