package binary

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

func TestReadinessDuringTheDrainAndHealthExitCodes(t *testing.T) {
	tokens := newOpsTokens(t, map[string]string{opsSecret: "tok-a"})
	arrived, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	supplier := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		_, _ = io.WriteString(w, "finished")
	}))
	defer supplier.Close()
	defer free() // a failing test must not leave the supplier hanging
	dir := t.TempDir()
	admin := freeAddr(t)
	config := writeFile(t, dir, "routes.yaml", fmt.Sprintf(`
listen: 127.0.0.1:0
admin: %s
routes:
  - {name: s, hosts: ["%s"], tokenUrl: "%s", clientId: ops, clientSecret: %s, authStyle: body}
`, admin, supplier.Listener.Addr(), tokens.URL, opsSecret))
	r := start(t, config)

	code, out, _ := runBinary(t, "", nil, "health", "-config", config)
	assert.Equal(t, 0, code)
	assert.Equal(t, "ready\n", out)

	result := make(chan string, 1)
	go func() {
		resp, err := proxyClient(r.addr).Get(supplier.URL + "/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-arrived
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	testkit.WaitFor(t, "/readyz to say 503 while draining", notReady(admin))
	code, _, errOut := runBinary(t, "", nil, "health", "-config", config)
	assert.Equal(t, 1, code, "not ready while draining")
	assert.Contains(t, errOut, "answered 503")

	free()
	assert.Equal(t, "finished", <-result, "the request in flight finished")
	select {
	case err := <-r.done:
		assert.NoError(t, err)
	case <-time.After(35 * time.Second):
		t.Fatal("no exit after the drain")
	}
	code, _, errOut = runBinary(t, "", nil, "health", "-config", config)
	assert.Equal(t, 1, code, "nothing listens any more")
	assert.Contains(t, errOut, "connection refused")

	code, _, errOut = runBinary(t, "", nil, "health", "-config", writeFile(t, dir, "noadmin.yaml", "routes: []\n"))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "names no admin address")
}

// With -drain-delay, SIGTERM turns readiness off at once but the proxy keeps accepting and serving new
// connections until the delay is over.
func TestDrainDelayKeepsServingWhileNotReady(t *testing.T) {
	supplier := authEcho(t)
	tokens := newOpsTokens(t, map[string]string{opsSecret: "tok-a"})
	config := writeFile(t, t.TempDir(), "routes.yaml", "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nroutes:\n"+
		routeYAML("s", supplier.Listener.Addr().String(), tokens.URL, ""))
	r := startArgs(t, []string{"-config", config, "-drain-delay", "60s"})
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	testkit.WaitFor(t, "/readyz to say 503 from the signal on", notReady(r.admin))
	// A new connection, after readiness went: still accepted and served.
	status, body := getBody(t, proxyClient(r.addr), supplier.URL+"/late")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "auth=Bearer tok-a-1", body)
	r.waitLog(t, "the delay", `"msg":"stopping: not ready any more, still serving until load balancers have noticed"`, `"drain_delay":"1m0s"`)
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM), "a second signal ends the delay")
	select {
	case err := <-r.done:
		assert.NoError(t, err)
	case <-time.After(35 * time.Second):
		t.Fatal("no exit after the second signal")
	}
}

// notReady tells whether the admin endpoints at admin answer /readyz with 503.
func notReady(admin string) func() bool {
	return func() bool {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	}
}
