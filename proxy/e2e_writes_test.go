package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordCounter counts the TLS records that arrive on a connection, reading their 5-byte headers as the
// bytes pass (RFC 8446 §5.1).
type recordCounter struct {
	net.Conn
	mu      sync.Mutex
	records int
	header  []byte
	skip    int // bytes left of the current record's body
}

func (c *recordCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	for b := p[:n]; len(b) > 0; {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
			continue
		}
		k := min(5-len(c.header), len(b))
		c.header = append(c.header, b[:k]...)
		b = b[k:]
		if len(c.header) == 5 {
			c.records++
			c.skip = int(c.header[3])<<8 | int(c.header[4])
			c.header = c.header[:0]
		}
	}
	return n, err
}

func (c *recordCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.records
}

// A small answer on an intercepted keep-alive connection is one TLS record: head and body in one write.
// Each record is a write of the proxy's, an encryption and a syscall.
func TestInterceptedSmallAnswerIsOneWrite(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	body := strings.Repeat("x", 1024)
	up := newUpstream(t, h.upCert, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, body)
	})
	h.route("supplier.test:443", up)
	raw, _ := h.rawConnect("supplier.test:443")
	counted := &recordCounter{Conn: raw}
	tc := tls.Client(counted, &tls.Config{ServerName: "supplier.test", RootCAs: h.caPool})
	require.NoError(t, tc.Handshake())
	br := bufio.NewReader(tc)
	get := func() {
		_, err := io.WriteString(tc, "GET /small HTTP/1.1\r\nHost: supplier.test\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		got, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, body, string(got))
	}
	get() // after the handshake a TLS 1.3 server may send session tickets with its first answer
	before := counted.count()
	const answers = 20
	for range answers {
		get()
	}
	assert.Equal(t, answers, counted.count()-before, "TLS records for %d answers", answers)
}
