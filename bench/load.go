package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"
)

// target is one way of sending the same GET: direct or through a proxy, plain or over TLS (through a proxy
// by CONNECT), on a kept-alive connection or on a new one for every request.
type target struct {
	name   string
	group  string // the direct target this one is compared with
	proxy  string // the proxy's address; empty for direct
	host   string // host:port the request is for
	tls    *tls.Config
	tunnel bool // through the proxy by CONNECT even without TLS: a byte-for-byte tunnel
	fresh  bool // a new connection for every request
}

// conn is one client connection with the request it sends, written once.
type conn struct {
	c   net.Conn
	br  *bufio.Reader
	req []byte
	// done is set when the other side said it closes the connection after its answer: the next request
	// needs a new connection, and that is no error.
	done   bool
	served int
}

// errStale is a kept-alive connection that the other side closed before this request: tinyproxy closes
// every client connection after its answer without saying so. A client then sends on a new connection.
var errStale = errors.New("the kept-alive connection was closed by the other side")

func (t *target) dial() (*conn, error) {
	addr := t.host
	if t.proxy != "" {
		addr = t.proxy
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(c, 16<<10)
	if t.proxy != "" && (t.tls != nil || t.tunnel) {
		if err := connect(c, br, t.host); err != nil {
			c.Close()
			return nil, err
		}
	}
	if t.tls != nil {
		tc := tls.Client(c, t.tls)
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, fmt.Errorf("%s: TLS: %w", t.name, err)
		}
		c, br = tc, bufio.NewReaderSize(tc, 16<<10)
	}
	_ = c.SetDeadline(time.Time{})
	uri := "/"
	if t.proxy != "" && t.tls == nil && !t.tunnel {
		uri = "http://" + t.host + "/" // absolute form, as an app with HTTP_PROXY sends it
	}
	closing := ""
	if t.fresh {
		closing = "Connection: close\r\n"
	}
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tokenproxy-bench\r\n%s\r\n", uri, t.host, closing)
	return &conn{c: c, br: br, req: []byte(req)}, nil
}

// connect asks the proxy for a tunnel to host.
func connect(c net.Conn, br *bufio.Reader, host string) error {
	if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", host, host); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return fmt.Errorf("CONNECT %s: %w", host, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("CONNECT %s: %s", host, resp.Status)
	}
	if br.Buffered() > 0 {
		return fmt.Errorf("CONNECT %s: the proxy sent bytes after its answer", host)
	}
	return nil
}

// do sends the request and reads the whole answer, which must be a 200.
func (c *conn) do() error {
	stale := func(err error) error {
		if c.served > 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
			errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
			return errStale
		}
		return err
	}
	if _, err := c.c.Write(c.req); err != nil {
		return stale(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return stale(err)
	}
	c.served++
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.done = resp.Close
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

func (c *conn) close() { _ = c.c.Close() }

// once sends one request on a connection of its own.
func (t *target) once() error {
	c, err := t.dial()
	if err != nil {
		return err
	}
	defer c.close()
	return c.do()
}

// send sends one request on *c, dialling when *c is nil and again when it went stale, and leaves *c nil
// when the connection cannot serve another request.
func (t *target) send(c **conn) error {
	if t.fresh {
		return t.once()
	}
	for attempt := 0; ; attempt++ {
		if *c == nil {
			var err error
			if *c, err = t.dial(); err != nil {
				*c = nil
				return err
			}
		}
		err := (*c).do()
		if err != nil || (*c).done {
			(*c).close()
			*c = nil
		}
		if err != errStale || attempt > 0 {
			return err
		}
	}
}

// result is what a run of a target measured.
type result struct {
	requests int
	errors   int
	lastErr  error
	took     time.Duration
	lat      []time.Duration // sorted
}

func (r *result) rps() float64 { return float64(r.requests) / r.took.Seconds() }

func (r *result) add(o result) {
	r.requests += o.requests
	r.errors += o.errors
	if o.lastErr != nil {
		r.lastErr = o.lastErr
	}
	r.took += o.took
	r.lat = append(r.lat, o.lat...)
	slices.Sort(r.lat)
}

// percentile of the sorted latencies, p in [0, 100].
func (r *result) percentile(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[int(float64(len(r.lat)-1)*p/100)]
}

// closedLoop runs conns workers, each sending its next request when the last one is answered, for d.
func closedLoop(t *target, conns int, d time.Duration) result {
	var mu sync.Mutex
	var total result
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine result
			var c *conn
			for time.Now().Before(deadline) {
				began := time.Now()
				err := t.send(&c)
				if err != nil {
					mine.errors++
					mine.lastErr = err
					time.Sleep(10 * time.Millisecond) // a failing target is not spun on
					continue
				}
				mine.requests++
				mine.lat = append(mine.lat, time.Since(began))
			}
			if c != nil {
				c.close()
			}
			mu.Lock()
			total.requests += mine.requests
			total.errors += mine.errors
			if mine.lastErr != nil {
				total.lastErr = mine.lastErr
			}
			total.lat = append(total.lat, mine.lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.took = time.Since(start)
	slices.Sort(total.lat)
	return total
}

// fixedRate sends rate requests a second for d over a pool of kept-alive connections. Each latency counts
// from the moment the request was due, not from when a connection was free to send it, so a stall shows
// in the figures instead of slowing the load (no coordinated omission).
func fixedRate(t *target, rate int, d time.Duration, conns int) result {
	total := int(d.Seconds() * float64(rate))
	due := make(chan time.Time, total)
	lats := make([][]time.Duration, conns)
	errs := make([]int, conns)
	var lastErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *conn
			for at := range due {
				err := t.send(&c)
				if err != nil {
					errs[i]++
					mu.Lock()
					lastErr = err
					mu.Unlock()
					continue
				}
				lats[i] = append(lats[i], time.Since(at))
			}
			if c != nil {
				c.close()
			}
		}()
	}
	start := time.Now()
	pace(total, time.Second/time.Duration(rate), func(_ int, at time.Time) { due <- at })
	close(due)
	wg.Wait()
	r := result{took: time.Since(start), lastErr: lastErr}
	for i := range conns {
		r.requests += len(lats[i])
		r.errors += errs[i]
		r.lat = append(r.lat, lats[i]...)
	}
	slices.Sort(r.lat)
	return r
}

// warm sends n requests to a target and fails on the first error: a target that does not work is not
// measured.
func warm(t *target, n int) error {
	var c *conn
	defer func() {
		if c != nil {
			c.close()
		}
	}()
	for range n {
		if err := t.send(&c); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}
	return nil
}
