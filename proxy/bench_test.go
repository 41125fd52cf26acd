package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/logging"
	"github.com/tokenproxy/tokenproxy/internal/minproxy"
)

const (
	benchConcurrency = 8
	benchRounds      = 5
)

var benchBody = strings.Repeat("x", 1024)

// benchFixture is a local upstream answering 1 KiB, tokenproxy with a matched route for it (token cached,
// logging to nowhere) at log level info and at error, the minimal net/http forward proxy and the bare one
// (a fixed Authorization, no hop-by-hop scan).
type benchFixture struct {
	up                             *httptest.Server
	tokenproxy, quiet, floor, bare *url.URL
}

func newBenchFixture(b *testing.B) *benchFixture {
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, benchBody)
	}))
	var newConns atomic.Int64
	up.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			newConns.Add(1)
		}
	}
	up.Start()
	b.Cleanup(func() {
		up.Close()
		// Five pools of benchConcurrency connections (direct and the four proxies' transports), and one
		// pool's worth of slack: a transport dials now and then while a connection is on its way back to its
		// pool (41 was seen). Much more than that means pooling broke.
		if n := newConns.Load(); n > 6*benchConcurrency {
			b.Errorf("the upstream saw %d new connections; keep-alive is not working", n)
		}
	})
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"access_token":"bench-token","expires_in":86400}`)
	}))
	b.Cleanup(tokens.Close)

	cfg, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(`
routes:
  - name: bench
    hosts: ["%s"]
    tokenUrl: %s
    clientId: c
    clientSecret: s
`, up.Listener.Addr(), tokens.URL)), config.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return &benchFixture{
		up:         up,
		tokenproxy: serveBench(b, "tokenproxy", benchProxy(b, cfg, "info").Serve),
		quiet:      serveBench(b, "tokenproxy-error", benchProxy(b, cfg, "error").Serve),
		floor:      serveBench(b, "minimal", func(l net.Listener) error { return http.Serve(l, minproxy.New(IdleConnsPerHost)) }),
		bare: serveBench(b, "bare", func(l net.Listener) error {
			return http.Serve(l, minproxy.Bare(IdleConnsPerHost, "Bearer bench-token"))
		}),
	}
}

// benchProxy is tokenproxy with the logger as deployed at level: at info the per-request line is part of
// the cost (written to nowhere).
func benchProxy(b *testing.B, cfg *config.Config, level string) *Server {
	log, closeLog, err := logging.New(io.Discard, level, "text", true)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(closeLog)
	srv, err := New(cfg, Options{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	return srv
}

// BenchmarkMatchedRequest sends one keep-alive client's GETs direct, through tokenproxy on a matched route
// and through the minimal and the bare proxy. allocs/op counts the whole process (client, proxy, upstream),
// so a path's allocs/op less direct's is what its proxy allocates per request.
//
//	go test ./proxy -run '^$' -bench MatchedRequest -benchmem -benchtime 20000x
func BenchmarkMatchedRequest(b *testing.B) {
	f := newBenchFixture(b)
	for _, path := range []struct {
		name  string
		proxy *url.URL
	}{{"direct", nil}, {"tokenproxy", f.tokenproxy}, {"minimal", f.floor}, {"bare", f.bare}} {
		b.Run(path.name, func(b *testing.B) {
			c := benchClient(path.proxy)
			for range 100 { // warm the connections and the token cache
				get(b, c, f.up.URL)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				get(b, c, f.up.URL)
			}
		})
	}
}

func benchClient(proxy *url.URL) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: benchConcurrency, DisableCompression: true}
	if proxy != nil {
		tr.Proxy = http.ProxyURL(proxy)
	}
	return &http.Client{Transport: tr}
}

func get(b *testing.B, c *http.Client, target string) {
	resp, err := c.Get(target)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

// BenchmarkProxyOverhead measures, in one run and interleaved, a keep-alive client going (a) direct to a
// local upstream, (b) through tokenproxy on a matched route with a cached token, logging at info, and at
// error, (c) through a minimal net/http forward proxy, the floor any Go proxy starts from, and (d) through
// the bare one, which only sets a fixed Authorization. It reports b/a, b/c, b/d and info/error of requests
// per second.
//
//	go test ./proxy -run '^$' -bench ProxyOverhead -benchtime 20000x -count 3
func BenchmarkProxyOverhead(b *testing.B) {
	f := newBenchFixture(b)
	up := f.up

	scenarios := []struct {
		name  string
		proxy *url.URL
		lat   []time.Duration
		took  time.Duration
	}{
		{name: "direct"}, {name: "tokenproxy", proxy: f.tokenproxy}, {name: "tokenproxy-error", proxy: f.quiet}, {name: "floor", proxy: f.floor},
		{name: "bare", proxy: f.bare},
	}
	clients := make([]*http.Client, len(scenarios))
	for i, sc := range scenarios {
		clients[i] = benchClient(sc.proxy)
		run(b, clients[i], up.URL, 200) // warm connections and the token cache
	}

	b.ResetTimer()
	perRound := max(b.N/benchRounds, benchConcurrency)
	for round := 0; round < benchRounds; round++ {
		for k := range scenarios {
			i := (k + round) % len(scenarios) // rotate the order so no scenario always runs first
			start := time.Now()
			scenarios[i].lat = append(scenarios[i].lat, run(b, clients[i], up.URL, perRound)...)
			scenarios[i].took += time.Since(start)
		}
	}
	b.StopTimer()

	rps := map[string]float64{}
	for _, sc := range scenarios {
		rps[sc.name] = float64(len(sc.lat)) / sc.took.Seconds()
		slices.Sort(sc.lat)
		b.ReportMetric(rps[sc.name], sc.name+"-req/s")
		b.ReportMetric(float64(percentile(sc.lat, 50).Microseconds()), sc.name+"-p50-µs")
		b.ReportMetric(float64(percentile(sc.lat, 99).Microseconds()), sc.name+"-p99-µs")
	}
	b.ReportMetric(rps["tokenproxy"]/rps["direct"], "b/a")
	b.ReportMetric(rps["tokenproxy"]/rps["floor"], "b/c")
	b.ReportMetric(rps["tokenproxy"]/rps["bare"], "b/d")
	b.ReportMetric(rps["tokenproxy"]/rps["tokenproxy-error"], "info/error")
}

// run sends n GETs from benchConcurrency workers and returns each one's latency.
func run(b *testing.B, c *http.Client, target string, n int) []time.Duration {
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	var next sync.Mutex
	i := 0
	for w := 0; w < benchConcurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				j := i
				i++
				next.Unlock()
				if j >= n {
					return
				}
				start := time.Now()
				resp, err := c.Get(target)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
				lat[j] = time.Since(start)
			}
		}()
	}
	wg.Wait()
	return lat
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}

// serveBench serves a proxy on loopback. Its goroutines, and those they start (the transport's), carry the
// pprof label proxy=name, so a CPU profile separates the proxy from the client and the upstream:
//
//	go test ./proxy -run '^$' -bench ProxyOverhead -cpuprofile cpu.out && go tool pprof -tagfocus proxy=tokenproxy cpu.out
func serveBench(b *testing.B, name string, serve func(net.Listener) error) *url.URL {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go pprof.Do(context.Background(), pprof.Labels("proxy", name), func(context.Context) { _ = serve(ln) })
	b.Cleanup(func() { _ = ln.Close() })
	return &url.URL{Scheme: "http", Host: ln.Addr().String()}
}

// BenchmarkGoproxyFixedCost does, word for word, what goproxy (v1.9.2) allocates for every plain request
// that tokenproxy cannot switch off within its API: the three log calls of handleHttp, whose arguments are
// built and boxed before Logf looks at Verbose (off), and its two look-ups of the answer's headers by
// lower-case names, which net/http canonicalizes into new strings. (Its proxy-header removal, with a fourth
// log call, is off: KeepHeader, tokenproxy removes those headers itself.)
func BenchmarkGoproxyFixedCost(b *testing.B) {
	ctx := &goproxy.ProxyCtx{Proxy: goproxy.NewProxyHttpServer()}
	r, err := http.NewRequest(http.MethodGet, "http://api.supplier.example/orders/1", nil)
	if err != nil {
		b.Fatal(err)
	}
	resp := &http.Response{Status: "200 OK", StatusCode: http.StatusOK}
	answer := http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"1024"}}
	nr := int64(len(benchBody))
	b.ReportAllocs()
	for range b.N {
		ctx.Logf("Got request %v %v %v %v", r.URL.Path, r.Host, r.Method, r.URL.String())
		ctx.Logf("Copying response to client %v [%d]", resp.Status, resp.StatusCode)
		_ = strings.HasPrefix(answer.Get("content-type"), "text/event-stream") ||
			strings.Contains(answer.Get("transfer-encoding"), "chunked")
		ctx.Logf("Copied %v bytes to client error=%v", nr, error(nil))
	}
}
