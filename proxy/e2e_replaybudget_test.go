package proxy

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// One intercepted HTTP/2 connection sends 100 POSTs of 1 MiB (each within retryBodyLimit) and reads none of
// the answers: the bodies kept for a replay hold at most the server's replay budget together; the rest
// stream and are not replayed. Without the budget the proxy held all 100 MiB for as long as the streams
// lived (the review's finding).
func TestReplayBodiesHoldAtMostTheBudget(t *testing.T) {
	const budget, streams, size = 4 << 20, 100, 1 << 20
	h := newHarness(t, harnessOptions{quiet: true, replayBudget: budget})
	answer := bytes.Repeat([]byte("y"), 256<<10)
	h.route("supplier.test:443", newUpstream(t, h.upCert, true, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write(answer)
	}))
	resp, err := h.client(h.caPool).Get("https://supplier.test/warm") // the token is cached before the baseline
	require.NoError(t, err)
	readAll(t, resp)
	h.closeIdle()
	base := measure(t)

	app := newUploadingApp(t, h)
	for i := range streams {
		app.post(t, uint32(2*i+1), size)
	}
	waitUntil(t, "every answer's headers arrived", func() bool { return app.answered() == streams })
	held := measure(t)
	kept := h.srv.replayHeld.Load()
	t.Logf("%d stalled 1 MiB POSTs: %v (baseline %v); bodies kept for a replay: %d MiB", streams, held, base, kept>>20)
	assert.Equal(t, int64(budget), kept, "as many bodies as the budget holds are kept, no more")
	assert.Less(t, int64(held.heap)-int64(base.heap), int64(60<<20), "the proxy holds the budget and the answers' windows, not 100 MiB of bodies")
	app.close()
	waitUntil(t, "the budget given back", func() bool { return h.srv.replayHeld.Load() == 0 })
}

// uploadingApp is an app on an intercepted HTTP/2 connection that sends request bodies as fast as the
// proxy's windows allow and grants no window for the answers.
type uploadingApp struct {
	c        *tls.Conn
	fr       *http2.Framer
	mu       sync.Mutex
	cond     *sync.Cond
	connWin  int64
	initial  int64
	win      map[uint32]int64
	headers  int
	hbuf     bytes.Buffer
	enc      *hpack.Encoder
	finished chan struct{}
}

func newUploadingApp(t *testing.T, h *harness) *uploadingApp {
	raw, _ := h.rawConnect("supplier.test:443")
	require.NoError(t, raw.SetDeadline(time.Time{}))
	c := tls.Client(raw, &tls.Config{ServerName: "supplier.test", RootCAs: h.caPool, NextProtos: []string{"h2"}})
	require.NoError(t, c.Handshake())
	a := &uploadingApp{c: c, fr: http2.NewFramer(c, c), connWin: 65535, initial: 65535, win: map[uint32]int64{}, finished: make(chan struct{})}
	a.cond = sync.NewCond(&a.mu)
	a.enc = hpack.NewEncoder(&a.hbuf)
	a.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	_, err := io.WriteString(c, http2.ClientPreface)
	require.NoError(t, err)
	require.NoError(t, a.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}))
	go a.read()
	t.Cleanup(a.close)
	return a
}

func (a *uploadingApp) read() {
	defer close(a.finished)
	for {
		f, err := a.fr.ReadFrame()
		a.mu.Lock()
		if err != nil {
			a.connWin = 1 << 40 // nothing more will come: let a waiting post give up
			a.cond.Broadcast()
			a.mu.Unlock()
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
					for id := range a.win {
						a.win[id] += int64(v) - a.initial
					}
					a.initial = int64(v)
				}
				_ = a.fr.WriteSettingsAck()
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				a.connWin += int64(f.Increment)
			} else {
				a.win[f.StreamID] += int64(f.Increment)
			}
		case *http2.MetaHeadersFrame:
			a.headers++
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = a.fr.WritePing(true, f.Data)
			}
		}
		a.cond.Broadcast()
		a.mu.Unlock()
	}
}

// post sends POST /upload with a body of size bytes on stream id, as the windows allow.
func (a *uploadingApp) post(t *testing.T, id uint32, size int) {
	chunk := bytes.Repeat([]byte("x"), 16<<10)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hbuf.Reset()
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", "supplier.test"}, {":path", "/upload"},
		{"content-length", strconv.Itoa(size)}} {
		_ = a.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	a.win[id] = a.initial
	require.NoError(t, a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: a.hbuf.Bytes(), EndHeaders: true}))
	for sent := 0; sent < size; {
		for a.connWin <= 0 || a.win[id] <= 0 {
			a.cond.Wait()
		}
		n := int(min(int64(len(chunk)), a.connWin, a.win[id], int64(size-sent)))
		require.NoError(t, a.fr.WriteData(id, sent+n == size, chunk[:n]))
		sent += n
		a.connWin -= int64(n)
		a.win[id] -= int64(n)
	}
}

func (a *uploadingApp) answered() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.headers
}

func (a *uploadingApp) close() {
	_ = a.c.Close()
	<-a.finished
}
