package binary

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Access lines are written off the request path, from a buffer; a clean stop writes every one of them, the
// last request's included, before "stopped".
func TestBinaryWritesEveryRequestLineBeforeItExits(t *testing.T) {
	supplier := authEcho(t)
	tokens := newOpsTokens(t, map[string]string{opsSecret: "tok-a"})
	config := writeFile(t, t.TempDir(), "routes.yaml", "listen: 127.0.0.1:0\nroutes:\n"+
		routeYAML("s", supplier.Listener.Addr().String(), tokens.URL, ""))
	r := startArgs(t, []string{"-config", config})
	c := proxyClient(r.addr)
	const requests = 300
	for i := range requests {
		status, body := getBody(t, c, fmt.Sprintf("%s/n/%d", supplier.URL, i))
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "auth=Bearer tok-a-1", body)
	}
	require.NoError(t, r.stop(t))
	assert.Equal(t, requests, r.countLog(`"msg":"request"`, `"route":"s"`, `"status":200`))
	assert.Equal(t, 1, r.countLog(`"path":"/n/299"`), "the last request's line")
	logs := strings.Split(r.logs(), "\n")
	assert.Contains(t, logs[len(logs)-1], `"msg":"stopped"`)
}

// A second signal during the drain stops the process at once, with exit code 1, and still writes the
// buffered lines and why it stopped.
func TestASignalDuringTheDrainStopsAtOnceAfterWritingTheLog(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hanging.Close)
	supplier := authEcho(t)
	tokens := newOpsTokens(t, map[string]string{opsSecret: "tok-a"})
	config := writeFile(t, t.TempDir(), "routes.yaml", "listen: 127.0.0.1:0\nroutes:\n"+
		routeYAML("s", supplier.Listener.Addr().String(), tokens.URL, "")+
		routeYAML("h", hanging.Listener.Addr().String(), tokens.URL, ""))
	r := startArgs(t, []string{"-config", config})
	c := proxyClient(r.addr)
	status, _ := getBody(t, c, supplier.URL+"/before")
	require.Equal(t, http.StatusOK, status)
	go func() {
		resp, err := c.Get(hanging.URL + "/hangs")
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-arrived
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	r.waitLog(t, "the drain", `"msg":"stopping: finishing requests in flight"`)
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	var err error
	select {
	case err = <-r.done:
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after a signal during the drain")
	}
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "exit: %v", err)
	assert.Equal(t, 1, exit.ExitCode())
	assert.Equal(t, 1, r.countLog(`"msg":"request"`, `"path":"/before"`))
	assert.Equal(t, 1, r.countLog(`"level":"WARN"`, `"msg":"stopping at once: a second signal during the drain; requests in flight are cut off"`))
}
