package proxy

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var soakFor = flag.Duration("soak", 0, "run TestSoak for this long, as -soak=10m (it is skipped otherwise)")

// TestSoak sends a fixed rate of mixed traffic for -soak: plain keep-alive, intercepted keep-alive, and an
// intercepted connection opened for each request, while the clock makes tokens expire and refresh. It
// reports RSS, goroutines and file descriptors every minute, and wants zero errors and a flat RSS.
//
//	go test ./proxy -run TestSoak -soak=10m -v -timeout 30m
func TestSoak(t *testing.T) {
	if *soakFor == 0 {
		t.Skip("soak runs only with -soak D")
	}
	const rate = 400 // requests per second
	h := newHarness(t, harnessOptions{quiet: true})
	h.mapHost("supplier.test:80", bareUpstream(t, nil))
	h.mapHost("supplier.test:443", bareUpstream(t, h.upCert))
	keepAlive := []*http.Client{h.client(nil), h.client(h.caPool)}
	fresh := h.client(h.caPool)
	fresh.Transport.(*http.Transport).DisableKeepAlives = true

	var sent, failed atomic.Int64
	var lastErr atomic.Value
	var wg sync.WaitGroup
	request := func(c *http.Client, url string) {
		defer wg.Done()
		resp, err := c.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil {
			failed.Add(1)
			lastErr.Store(err.Error())
		}
	}

	start := time.Now()
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	minute := time.NewTicker(time.Minute)
	defer minute.Stop()
	var rss []int64
	sample := func() {
		u := measure(t)
		r := rssKiB(t)
		rss = append(rss, r)
		t.Logf("%5s: %d requests, %d failed, RSS %.1f MiB, %v", time.Since(start).Round(time.Second), sent.Load(), failed.Load(),
			float64(r)/1024, u)
	}
	sample()
	for i := 0; time.Since(start) < *soakFor; {
		select {
		case <-minute.C:
			sample()
		case <-tick.C:
			i++
			sent.Add(1)
			wg.Add(1)
			switch {
			case i%20 == 0:
				go request(fresh, "https://supplier.test/new-connection")
			case i%2 == 0:
				go request(keepAlive[1], "https://supplier.test/keep-alive")
			default:
				go request(keepAlive[0], "http://supplier.test/keep-alive")
			}
			if i%rate == 0 {
				h.clock.Advance(time.Minute) // an hour of token lifetimes per minute: refresh ahead keeps running
			}
		}
	}
	wg.Wait()
	sample()
	t.Logf("%d requests in %s, %d failed (last: %v), %d token requests", sent.Load(), time.Since(start).Round(time.Second),
		failed.Load(), lastErr.Load(), h.tokens.Count.Load())
	assert.Zero(t, failed.Load())
	require.GreaterOrEqual(t, len(rss), 3)
	settled := rss[1] // after the first minute's warm-up
	assert.Less(t, rss[len(rss)-1], settled+settled/5, "RSS stays flat: within 20%% of the first minute's")
}

// rssKiB is the process's resident set size.
func rssKiB(t *testing.T) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
