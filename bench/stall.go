package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// stallAnswer is the size of the answers the stalling apps ask for, as in the black-box probe.
const stallAnswer = 5 << 20

// stallHandler is the HTTP/2 supplier of the stall part: /big answers 5 MiB, anything else 1 KiB.
func stallHandler(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if r.URL.Path != "/big" {
		upstreamHandler(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(stallAnswer))
	for sent := 0; sent < stallAnswer; sent += len(stallChunk) {
		if _, err := w.Write(stallChunk); err != nil {
			return
		}
	}
}

var stallChunk = bytes.Repeat([]byte("x"), 32<<10)

// stall measures what apps that read nothing of their answers cost tokenproxy: one app stalling streams on
// intercepted HTTP/2 connections with a zero window, then as many plain HTTP/1.1 apps that never read,
// each asking a supplier that speaks HTTP/2 for 5 MiB, while another supplier is asked every 100 ms.
func stall(f *fixture, rep *report, streams int) error {
	up, err := startRole("h2upstream", "BENCH_CERT="+f.upCert, "BENCH_KEY="+strings.TrimSuffix(f.upCert, ".crt")+".key")
	if err != nil {
		return err
	}
	defer up.stop()
	if len(up.addrs) != 2 {
		return fmt.Errorf("the HTTP/2 upstream listens on %v, want 2 addresses", up.addrs)
	}
	big, other := up.addrs[0], up.addrs[1]
	var rows [][]string
	for _, kind := range []string{"HTTP/2 streams with a zero window, one app", "plain HTTP/1.1 apps that never read"} {
		r, err := stallKind(f, rep, kind, big, other, streams)
		if err != nil {
			return err
		}
		rows = append(rows, r...)
	}
	rep.table("Apps that read nothing",
		"A fresh tokenproxy process (log level warn) for each kind; the apps ask an HTTP/2 supplier for 5 MiB each and "+
			"read none of it. The figures are the largest RSS seen until it stopped growing (after the apps left, once goroutines and "+
			"descriptors are back: the Go runtime keeps the heap it grew until a later collection); the last column is "+
			"the slowest of the answers another supplier gave meanwhile (a kept-alive intercepted connection, one "+
			"request every 100 ms).",
		[]string{"state", "RSS", "Go heap in use", "goroutine stacks", "goroutines", "open fds", "other supplier, slowest"}, rows)
	return nil
}

// stallKind runs one kind of stalled apps against a tokenproxy of its own and returns its table rows.
func stallKind(f *fixture, rep *report, kind, big, other string, streams int) ([][]string, error) {
	tp, err := f.runTokenproxy("tokenproxy-stall", "warn", fmt.Sprintf(`
  - name: big
    hosts: ["%s"]
    tokenUrl: http://%s/token
    clientId: bench
    clientSecret: bench-secret
    upstreamTLS: true
  - name: other
    hosts: ["%s"]
    tokenUrl: http://%s/token
    clientId: bench
    clientSecret: bench-secret
`, big, f.matched, other, f.matched))
	if err != nil {
		return nil, err
	}
	defer tp.stop()
	asker := &target{name: "other supplier", proxy: tp.addr, host: other, tls: f.viaCA}
	ask, err := asker.dial()
	if err != nil {
		return nil, err
	}
	defer ask.close()
	if err := ask.do(); err != nil { // the token cached, the connections up
		return nil, err
	}
	warm, err := newStallingApp(tp.addr, big, f.viaCA)
	if err != nil {
		return nil, err
	}
	if err := warm.get(big, "/big"); err != nil {
		return nil, err
	}
	warm.close()
	base, err := tp.settle(sample{goroutines: 1 << 30})
	if err != nil {
		return nil, err
	}
	var slowest time.Duration
	probe := func() error {
		start := time.Now()
		err := ask.do()
		slowest = max(slowest, time.Since(start))
		return err
	}
	closeApps, err := stallApps(kind, tp.addr, big, f.viaCA, streams)
	if err != nil {
		return nil, err
	}
	held, err := tp.steady(probe)
	closeApps()
	if err != nil {
		return nil, err
	}
	during := slowest
	after, err := tp.settle(base)
	if err != nil {
		return nil, err
	}
	slowest = 0
	for range 10 {
		if err := probe(); err != nil {
			return nil, fmt.Errorf("the other supplier after the stall: %w", err)
		}
	}
	cost := held.rss - base.rss
	rep.target(fmt.Sprintf("%d %s cost < 100 MB; another supplier answers within a second during and after", streams, kind),
		cost < 100e6 && during < time.Second && slowest < time.Second,
		"+%.1f MB RSS; slowest answer %s during, %s after", float64(cost)/1e6, ms(during), ms(slowest))
	return [][]string{
		append(row(kind+": idle", base), "–"),
		append(row(fmt.Sprintf("  %d of them, 5 MiB answers", streams), held), ms(during)),
		append(row("  … after they left", after), ms(slowest)),
	}, nil
}

// steady samples tp every second, calling probe every 100 ms meanwhile, until its RSS has grown less than
// 1 MiB in 3 s (30 s at most), and returns the sample with the largest RSS.
func (tp *tokenproxy) steady(probe func() error) (sample, error) {
	deadline := time.Now().Add(30 * time.Second)
	var peak sample
	var history []int64
	for {
		for range 10 {
			if err := probe(); err != nil {
				return peak, fmt.Errorf("the other supplier during the stall: %w", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		s, err := tp.sample()
		if err != nil {
			return peak, err
		}
		if s.rss > peak.rss {
			peak = s
		}
		history = append(history, s.rss)
		if n := len(history); n > 3 && history[n-1]-history[n-4] < 1<<20 || time.Now().After(deadline) {
			return peak, nil
		}
	}
}

// stallApps starts n stalled answers of one kind and returns what ends them.
func stallApps(kind, proxy, host string, viaCA *tls.Config, n int) (func(), error) {
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	if strings.HasPrefix(kind, "HTTP/2") {
		for opened := 0; opened < n; {
			a, err := newStallingApp(proxy, host, viaCA)
			if err != nil {
				closeAll()
				return nil, err
			}
			closers = append(closers, a.close)
			for i := 0; i < int(a.maxStreams.Load()) && opened < n; i++ {
				if err := a.get(host, "/big"); err != nil {
					closeAll()
					return nil, err
				}
				opened++
			}
		}
		return closeAll, nil
	}
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	for range n {
		c, err := d.Dial("tcp", proxy)
		if err != nil {
			closeAll()
			return nil, err
		}
		closers = append(closers, func() { _ = c.Close() })
		if _, err := fmt.Fprintf(c, "GET http://%s/big HTTP/1.1\r\nHost: %s\r\n\r\n", host, host); err != nil {
			closeAll()
			return nil, err
		}
	}
	return closeAll, nil
}

// stallingApp is an app on an intercepted HTTP/2 connection that never grants a byte of window.
type stallingApp struct {
	c          *tls.Conn
	fr         *http2.Framer
	hbuf       bytes.Buffer
	henc       *hpack.Encoder
	next       uint32
	maxStreams atomic.Uint32
	done       chan struct{}
}

func newStallingApp(proxy, host string, viaCA *tls.Config) (*stallingApp, error) {
	t := &target{name: "stalling app", proxy: proxy, host: host, tunnel: true}
	raw, err := t.dial()
	if err != nil {
		return nil, err
	}
	conf := viaCA.Clone()
	conf.NextProtos = []string{"h2"}
	c := tls.Client(raw.c, conf)
	if err := c.Handshake(); err != nil {
		raw.close()
		return nil, err
	}
	a := &stallingApp{c: c, fr: http2.NewFramer(c, c), next: 1, done: make(chan struct{})}
	a.henc = hpack.NewEncoder(&a.hbuf)
	settled := make(chan struct{})
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return nil, err
	}
	if err := a.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		return nil, err
	}
	go func() {
		defer close(a.done)
		first := true
		for {
			f, err := a.fr.ReadFrame()
			if err != nil {
				return
			}
			if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
				if v, ok := s.Value(http2.SettingMaxConcurrentStreams); ok {
					a.maxStreams.Store(v)
				}
				_ = a.fr.WriteSettingsAck()
				if first {
					first = false
					close(settled)
				}
			}
		}
	}()
	select {
	case <-settled:
	case <-time.After(10 * time.Second):
		a.close()
		return nil, fmt.Errorf("tokenproxy sent no HTTP/2 SETTINGS")
	}
	return a, nil
}

func (a *stallingApp) get(host, path string) error {
	a.hbuf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", host}, {":path", path}} {
		_ = a.henc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	id := a.next
	a.next += 2
	return a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: a.hbuf.Bytes(), EndStream: true, EndHeaders: true})
}

func (a *stallingApp) close() {
	_ = a.c.Close()
	<-a.done
}
