package minproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The bare proxy sends the request with its fixed Authorization in place of the app's and without
// Proxy-Connection, and copies the answer's status, headers and body.
func TestBareSetsAuthorizationAndCopiesTheAnswer(t *testing.T) {
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Header().Set("X-Answer", "yes")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "body")
	}))
	defer up.Close()
	bare := httptest.NewServer(Bare(4, "Bearer fixed"))
	defer bare.Close()
	proxyURL, err := url.Parse(bare.URL)
	require.NoError(t, err)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}

	req, err := http.NewRequest(http.MethodGet, up.URL+"/x", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer the-apps")
	req.Header.Set("Proxy-Connection", "keep-alive")
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)

	assert.Equal(t, http.StatusTeapot, resp.StatusCode)
	assert.Equal(t, "yes", resp.Header.Get("X-Answer"))
	assert.Equal(t, "body", string(body))
	assert.Equal(t, []string{"Bearer fixed"}, got["Authorization"])
	assert.NotContains(t, got, "Proxy-Connection")
}

// The bare proxy's small answers leave in one write, head and body together, as tokenproxy's do: the
// comparison is of the work per request, not of how net/http splits an answer.
func TestBareAnswersInOneWrite(t *testing.T) {
	body := strings.Repeat("x", 1024) // over the 512 bytes net/http's ReadFrom writes before handing over
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, body)
	}))
	defer up.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	counting := &countingListener{Listener: ln}
	srv := &http.Server{Handler: Bare(4, "Bearer fixed")}
	go func() { _ = srv.Serve(counting) }()
	defer srv.Close()

	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	br := bufio.NewReader(c)
	const answers = 20
	for range answers {
		_, err := fmt.Fprintf(c, "GET %s/ HTTP/1.1\r\nHost: %s\r\n\r\n", up.URL, up.Listener.Addr())
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		got, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, body, string(got))
	}
	assert.Equal(t, int64(answers), counting.writes.Load())
}

// countingListener counts the writes to its connections, those a ReadFrom makes included.
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{TCPConn: c.(*net.TCPConn), writes: &l.writes}, nil
}

// countingConn keeps the TCP connection's ReadFrom, which net/http's answers use when they find it.
type countingConn struct {
	*net.TCPConn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.TCPConn.Write(p)
}

func (c *countingConn) ReadFrom(r io.Reader) (int64, error) {
	c.writes.Add(1)
	return c.TCPConn.ReadFrom(r)
}
