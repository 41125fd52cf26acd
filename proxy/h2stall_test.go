package proxy

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// endlessUpstream is an HTTP/2 supplier written with the frame layer: it answers every request 200 and
// then sends DATA without end, as fast as the windows the proxy grants allow. It records those windows and
// what it sent, so a test sees from the upstream's side how much the proxy holds.
type endlessUpstream struct {
	ln            net.Listener
	streamWindow  atomic.Int64 // the INITIAL_WINDOW_SIZE the proxy asked for
	connWindow    atomic.Int64 // the connection window now: granted less sent
	maxConnWindow atomic.Int64 // the largest connection window the proxy ever granted
	sent          atomic.Int64 // DATA bytes sent
	streams       atomic.Int64 // requests received
	resets        atomic.Int64 // streams the proxy reset
	wg            sync.WaitGroup
}

func newEndlessUpstream(t *testing.T, cert *tls.Certificate) *endlessUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := &endlessUpstream{ln: tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: []string{"h2"}})}
	var conns sync.Map
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := u.ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer c.Close()
				u.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = u.ln.Close()
		conns.Range(func(c, _ any) bool { _ = c.(net.Conn).Close(); return true })
		u.wg.Wait()
	})
	return u
}

func (u *endlessUpstream) addr() string { return u.ln.Addr().String() }

var endlessChunk = bytes.Repeat([]byte("x"), 16<<10)

func (u *endlessUpstream) serve(c net.Conn) {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1000}) != nil {
		return
	}
	var hbuf bytes.Buffer
	henc := hpack.NewEncoder(&hbuf)
	connWin, initial := int64(65535), int64(65535)
	windows := map[uint32]int64{}
	grant := func(n int64) {
		connWin += n
		u.connWindow.Store(connWin)
		for m := u.maxConnWindow.Load(); connWin > m && !u.maxConnWindow.CompareAndSwap(m, connWin); m = u.maxConnWindow.Load() {
		}
	}
	grant(0)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			_ = f.ForeachSetting(func(s http2.Setting) error {
				if s.ID == http2.SettingInitialWindowSize {
					for id := range windows {
						windows[id] += int64(s.Val) - initial
					}
					initial = int64(s.Val)
					u.streamWindow.Store(initial)
				}
				return nil
			})
			if fr.WriteSettingsAck() != nil {
				return
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				grant(int64(f.Increment))
			} else if _, open := windows[f.StreamID]; open {
				windows[f.StreamID] += int64(f.Increment)
			}
		case *http2.MetaHeadersFrame:
			u.streams.Add(1)
			windows[f.StreamID] = initial
			hbuf.Reset()
			_ = henc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			_ = henc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/octet-stream"})
			if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: hbuf.Bytes(), EndHeaders: true}) != nil {
				return
			}
		case *http2.RSTStreamFrame:
			delete(windows, f.StreamID)
			u.resets.Add(1)
		case *http2.PingFrame:
			if !f.IsAck() && fr.WritePing(true, f.Data) != nil {
				return
			}
		case *http2.GoAwayFrame:
			return
		}
		for id, w := range windows {
			for w > 0 && connWin > 0 {
				n := min(int64(len(endlessChunk)), w, connWin)
				if fr.WriteData(id, false, endlessChunk[:n]) != nil {
					return
				}
				w -= n
				grant(-n)
				u.sent.Add(n)
			}
			windows[id] = w
		}
	}
}

// stallingApp is an app on an intercepted HTTP/2 connection that never grants a byte of window: the
// answers' headers reach it, their bodies cannot.
type stallingApp struct {
	c          *tls.Conn
	fr         *http2.Framer
	henc       *hpack.Encoder
	hbuf       bytes.Buffer
	maxStreams atomic.Uint32 // the proxy's MAX_CONCURRENT_STREAMS
	settled    chan struct{} // the proxy's SETTINGS arrived
	next       uint32
	answered   atomic.Int64 // answers whose headers arrived
	reset      atomic.Int64 // streams the proxy reset
	ok         atomic.Int64 // answers with status 200
	done       chan struct{}
}

func (h *harness) stallingApp(target string) *stallingApp {
	h.t.Helper()
	raw, _ := h.rawConnect(target)
	require.NoError(h.t, raw.SetDeadline(time.Time{}))
	host, _, _ := net.SplitHostPort(target)
	c := tls.Client(raw, &tls.Config{ServerName: host, RootCAs: h.caPool, NextProtos: []string{"h2"}})
	require.NoError(h.t, c.Handshake())
	require.Equal(h.t, "h2", c.ConnectionState().NegotiatedProtocol)
	a := &stallingApp{c: c, fr: http2.NewFramer(c, c), next: 1, settled: make(chan struct{}), done: make(chan struct{})}
	a.henc = hpack.NewEncoder(&a.hbuf)
	a.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	_, err := io.WriteString(c, http2.ClientPreface)
	require.NoError(h.t, err)
	require.NoError(h.t, a.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}))
	go a.read()
	h.t.Cleanup(a.close)
	select {
	case <-a.settled:
	case <-time.After(10 * time.Second):
		h.t.Fatal("the proxy sent no SETTINGS")
	}
	return a
}

func (a *stallingApp) read() {
	defer close(a.done)
	once := sync.Once{}
	for {
		f, err := a.fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			if v, ok := f.Value(http2.SettingMaxConcurrentStreams); ok {
				a.maxStreams.Store(v)
			}
			_ = a.fr.WriteSettingsAck()
			once.Do(func() { close(a.settled) })
		case *http2.MetaHeadersFrame:
			a.answered.Add(1)
			if f.PseudoValue("status") == "200" {
				a.ok.Add(1)
			}
		case *http2.RSTStreamFrame:
			a.reset.Add(1)
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = a.fr.WritePing(true, f.Data)
			}
		}
	}
}

// get opens a stream for GET https://host/path.
func (a *stallingApp) get(host, path string) error {
	a.hbuf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", host}, {":path", path}} {
		_ = a.henc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	id := a.next
	a.next += 2
	return a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: a.hbuf.Bytes(), EndStream: true, EndHeaders: true})
}

// close disconnects the app and waits for its reader.
func (a *stallingApp) close() {
	_ = a.c.Close()
	<-a.done
}

// stallStreams opens n streams of endless answers from one app, on as many intercepted connections as the
// proxy's stream limit needs.
func (h *harness) stallStreams(target string, n int) []*stallingApp {
	h.t.Helper()
	host, _, _ := net.SplitHostPort(target)
	var apps []*stallingApp
	for opened := 0; opened < n; {
		a := h.stallingApp(target)
		apps = append(apps, a)
		limit := int(a.maxStreams.Load())
		require.Positive(h.t, limit)
		for i := 0; i < limit && opened < n; i++ {
			require.NoError(h.t, a.get(host, "/endless/"+strings.Repeat("x", i%3)))
			opened++
		}
	}
	return apps
}
