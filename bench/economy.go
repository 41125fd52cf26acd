package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// scenario is a token endpoint's and a supplier's behaviour under one load, run once through tokenproxy
// and once through golang.org/x/oauth2's clientcredentials TokenSource behind a plain http.Transport.
type scenario struct {
	name      string
	expiresIn int           // the token answer's expires_in
	latency   time.Duration // how long the token endpoint takes to answer
	dead      bool          // the token endpoint takes connections and closes them
	supplier  func(token string) int
	burst     int // requests sent burstConcurrency at a time; otherwise rate a second for the run's length
	rate      int
}

const burstConcurrency = 200

func accept(string) int { return http.StatusOK }

func refuseAll(string) int { return http.StatusUnauthorized }

// revokedFirst refuses the first token issued, as after an IdP restart or a key rotation right after issue.
func revokedFirst(token string) int {
	if token == "tok-1" {
		return http.StatusUnauthorized
	}
	return http.StatusOK
}

// tokenEndpoint issues tok-1, tok-2, … and counts what it was asked.
type tokenEndpoint struct {
	sc   *scenario
	hits atomic.Int64
	ln   net.Listener
	srv  *http.Server
}

func startTokenEndpoint(sc *scenario) (*tokenEndpoint, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	te := &tokenEndpoint{sc: sc, ln: ln}
	if sc.dead {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				te.hits.Add(1)
				c.Close()
			}
		}()
		return te, nil
	}
	te.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := te.hits.Add(1)
		select {
		case <-time.After(sc.latency):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":%d}`, n, sc.expiresIn)
	})}
	go func() { _ = te.srv.Serve(ln) }()
	return te, nil
}

func (te *tokenEndpoint) url() string { return "http://" + te.ln.Addr().String() + "/token" }

func (te *tokenEndpoint) close() {
	if te.srv != nil {
		_ = te.srv.Close()
	}
	_ = te.ln.Close()
}

// startSupplier answers with the scenario's status for the bearer token it receives.
func startSupplier(sc *scenario) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(sc.supplier(token))
	})}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}

// outcome is what one side of a scenario cost the token endpoint and gave the app.
type outcome struct {
	hits     int64
	requests int
	failures int
	lat      []time.Duration // sorted; steady loads only, from each request's due time
}

func (o outcome) p99() time.Duration {
	if len(o.lat) == 0 {
		return 0
	}
	return o.lat[(len(o.lat)-1)*99/100]
}

// slower counts the requests that took longer than d.
func (o outcome) slower(d time.Duration) int {
	i, _ := slices.BinarySearch(o.lat, d+1)
	return len(o.lat) - i
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// runSide runs the scenario's load through client against the supplier, after one request that warms
// the client (and its token) up; that request is not counted.
func runSide(sc *scenario, client *http.Client, supplierURL string, length time.Duration) outcome {
	var out outcome
	send := func() bool {
		resp, err := client.Get(supplierURL)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	send()
	var mu sync.Mutex
	var wg sync.WaitGroup
	if sc.burst > 0 {
		jobs := make(chan struct{}, sc.burst)
		for range sc.burst {
			jobs <- struct{}{}
		}
		close(jobs)
		for range burstConcurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range jobs {
					ok := send()
					mu.Lock()
					out.requests++
					out.failures += boolInt(!ok)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return out
	}
	total := int(length.Seconds() * float64(sc.rate))
	due := make(chan time.Time, total)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for at := range due {
				ok := send()
				took := time.Since(at)
				mu.Lock()
				out.requests++
				out.failures += boolInt(!ok)
				out.lat = append(out.lat, took)
				mu.Unlock()
			}
		}()
	}
	pace(total, time.Second/time.Duration(sc.rate), func(_ int, at time.Time) { due <- at })
	close(due)
	wg.Wait()
	slices.Sort(out.lat)
	return out
}

// viaTokenproxy runs the scenario through a tokenproxy of its own.
func viaTokenproxy(f *fixture, sc *scenario, i int, length time.Duration) (outcome, error) {
	return runSideAgainst(sc, length, func(tokenURL, supplier string) (*http.Client, func(), error) {
		tp, err := f.runTokenproxy(fmt.Sprintf("economy-%d", i), "warn", fmt.Sprintf(`
  - name: economy
    hosts: ["%s"]
    tokenUrl: %s
    clientId: economy
    clientSecret: economy-secret
`, supplier, tokenURL))
		if err != nil {
			return nil, nil, err
		}
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			Proxy: http.ProxyURL(mustURL("http://" + tp.addr)), MaxIdleConnsPerHost: burstConcurrency}}, tp.stop, nil
	})
}

// viaOAuth2 runs the scenario through x/oauth2: clientcredentials' TokenSource (which reuses a token until
// 10 s before it expires) in an oauth2.Transport over a plain http.Transport, as an app would use it.
func viaOAuth2(sc *scenario, length time.Duration) (outcome, error) {
	return runSideAgainst(sc, length, func(tokenURL, _ string) (*http.Client, func(), error) {
		cfg := &clientcredentials.Config{ClientID: "economy", ClientSecret: "economy-secret", TokenURL: tokenURL,
			AuthStyle: oauth2.AuthStyleInHeader}
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, plainClient)
		return &http.Client{Timeout: 30 * time.Second, Transport: &oauth2.Transport{
			Source: cfg.TokenSource(ctx), Base: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: burstConcurrency}}}, func() {}, nil
	})
}

// runSideAgainst starts the scenario's token endpoint and supplier of one side, and runs the scenario with
// the client that clientFor makes for them; stop ends what clientFor started.
func runSideAgainst(sc *scenario, length time.Duration,
	clientFor func(tokenURL, supplier string) (client *http.Client, stop func(), err error)) (outcome, error) {
	te, err := startTokenEndpoint(sc)
	if err != nil {
		return outcome{}, err
	}
	defer te.close()
	sup, addr, err := startSupplier(sc)
	if err != nil {
		return outcome{}, err
	}
	defer sup.Close()
	client, stop, err := clientFor(te.url(), addr)
	if err != nil {
		return outcome{}, err
	}
	defer stop()
	out := runSide(sc, client, "http://"+addr+"/", length)
	out.hits = te.hits.Load()
	return out, nil
}
