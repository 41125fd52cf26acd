package proxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Each case runs over plain HTTP and over an intercepted tunnel.
var schemes = []struct {
	name, scheme, hostport string
	tls                    bool
}{
	{"plain", "http", "supplier.test:80", false},
	{"intercepted", "https", "supplier.test:443", true},
}

func (h *harness) upstreamFor(tlsOn bool, readsBody bool, handler http.HandlerFunc) *upstream {
	if tlsOn {
		return newUpstream(h.t, h.upCert, readsBody, handler)
	}
	return newUpstream(h.t, nil, readsBody, handler)
}

func TestStreamedResponseArrivesChunkByChunk(t *testing.T) {
	for _, sc := range schemes {
		for _, contentType := range []string{"text/event-stream", "application/x-ndjson"} {
			t.Run(sc.name+" "+contentType, func(t *testing.T) {
				testStreamedResponse(t, sc.scheme, sc.hostport, sc.tls, contentType)
			})
		}
	}
}

func testStreamedResponse(t *testing.T, scheme, hostport string, tlsOn bool, contentType string) {
	h := newHarness(t, harnessOptions{})
	next := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(next) }) }
	up := h.upstreamFor(tlsOn, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-next // the second event is written only after the client has seen the first
		_, _ = io.WriteString(w, "data: two\n\n")
	})
	h.route(hostport, up)
	t.Cleanup(release) // registered after the upstream, so it runs before its Close waits for this handler

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://supplier.test/events", nil)
	require.NoError(t, err)
	resp, err := h.client(h.caPool).Do(req)
	require.NoError(t, err, "a proxy that buffers the answer never returns its head before the deadline")
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	require.NoError(t, err, "the first event must arrive while the upstream is still streaming")
	assert.Equal(t, "data: one\n", line)
	release()
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, "\ndata: two\n\n", string(rest))
}

// patternReader yields n deterministic pseudo-random bytes.
func patternReader(seed int64, n int64) io.Reader {
	return io.LimitReader(rand.New(rand.NewSource(seed)), n)
}

func hashOf(r io.Reader) (string, int64) {
	h := sha256.New()
	n, _ := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n
}

func TestLargeBodiesAreStreamedByteIdentical(t *testing.T) {
	const size = 50 << 20
	wantSHA, _ := hashOf(patternReader(1, size))
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			firstBytes := make(chan struct{})
			up := h.upstreamFor(sc.tls, true, func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					buf := make([]byte, 1)
					_, err := io.ReadFull(r.Body, buf)
					assert.NoError(t, err)
					close(firstBytes) // the upload is still being written by the client
					got, _ := hashOf(io.MultiReader(strings.NewReader(string(buf)), r.Body))
					_, _ = io.WriteString(w, got)
					return
				}
				_, _ = io.Copy(w, patternReader(1, size))
			})
			h.route(sc.hostport, up)

			// Upload of unknown length (chunked): the client holds back the rest until the upstream has
			// received the first byte, which a proxy that buffers the whole body would never deliver.
			pr, pw := io.Pipe()
			go func() {
				src := patternReader(1, size)
				if _, err := io.CopyN(pw, src, 1<<20); err != nil {
					pw.CloseWithError(err)
					return
				}
				select {
				case <-firstBytes:
				case <-time.After(20 * time.Second):
					pw.CloseWithError(io.ErrUnexpectedEOF)
					return
				}
				_, err := io.Copy(pw, src)
				pw.CloseWithError(err)
			}()
			req, err := http.NewRequest(http.MethodPost, sc.scheme+"://supplier.test/upload", pr)
			require.NoError(t, err)
			resp, err := h.client(h.caPool).Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, wantSHA, string(body), "the upstream received the upload byte-identical")

			resp, err = h.client(h.caPool).Get(sc.scheme + "://supplier.test/download")
			require.NoError(t, err)
			gotSHA, n := hashOf(resp.Body)
			resp.Body.Close()
			assert.EqualValues(t, size, n)
			assert.Equal(t, wantSHA, gotSHA, "the download arrived byte-identical")
		})
	}
}
