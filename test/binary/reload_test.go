package binary

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

// reloadable is a running binary with a routes.yaml the test rewrites.
type reloadable struct {
	*running
	config string
	tokens *testkit.TokenServer
}

func startReloadable(t *testing.T, routes string, args ...string) *reloadable {
	tokens := newOpsTokens(t, map[string]string{opsSecret: "tok-a"})
	dir := t.TempDir()
	config := writeFile(t, dir, "routes.yaml", "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nroutes:\n"+strings.ReplaceAll(routes, "TOKENS", tokens.URL))
	r := startArgs(t, append([]string{"-config", config}, args...))
	return &reloadable{running: r, config: config, tokens: tokens}
}

// write replaces routes.yaml in one step, as a deployment tool or a ConfigMap update would.
func (r *reloadable) write(t *testing.T, content string) {
	content = strings.ReplaceAll(content, "TOKENS", r.tokens.URL)
	tmp := r.config + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, r.config))
}

func TestReloadUnderLoadLosesNoRequest(t *testing.T) {
	one, two := authEcho(t), authEcho(t)
	routesOne := routeYAML("one", one.Listener.Addr().String(), "TOKENS", "")
	r := startReloadable(t, routesOne, "-reload-interval", "50ms")
	c := proxyClient(r.addr)

	var ok, failed, otherToken atomic.Int64
	var failures sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(one.URL + "/loop")
				if err != nil {
					failed.Add(1)
					failures.Store(err.Error(), true)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "auth=Bearer tok-a-") {
					failed.Add(1)
					failures.Store(fmt.Sprintf("%d %s", resp.StatusCode, b), true)
					continue
				}
				if string(b) != "auth=Bearer tok-a-1" {
					otherToken.Add(1)
				}
				ok.Add(1)
			}
		}()
	}
	testkit.WaitFor(t, "50 requests through the proxy before the first reload", func() bool { return ok.Load() > 50 })

	// Five reloads while the loop runs: the second route comes and goes, the first stays.
	head := "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nroutes:\n"
	for i := range 5 {
		withTwo := head + routesOne + routeYAML("two", two.Listener.Addr().String(), "TOKENS", "")
		written := time.Now()
		r.write(t, withTwo)
		testkit.WaitFor(t, "the new route in effect", func() bool {
			_, body := getBody(t, c, two.URL+"/")
			return strings.HasPrefix(body, "auth=Bearer ")
		})
		t.Logf("reload %d: the new route was in effect %s after the write", i+1, time.Since(written).Round(time.Millisecond))
		r.write(t, head+routesOne+routeYAML("two", two.Listener.Addr().String(), "TOKENS", ", scope: s"+fmt.Sprint(i))+
			"  - {name: three, hosts: [three.test], tokenUrl: \"TOKENS\", clientId: x, clientSecret: y}\n")
		testkit.WaitFor(t, "the three-route configuration reloaded", func() bool {
			return r.countLog(`"msg":"configuration reloaded"`, `"routes":3`) == i+1
		})
		r.write(t, head+routesOne)
		testkit.WaitFor(t, "the route removed again", func() bool {
			_, body := getBody(t, c, two.URL+"/")
			return body == "auth="
		})
	}
	close(stop)
	wg.Wait()
	var seen []string
	failures.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
	assert.Zero(t, failed.Load(), "failed requests during reloads: %v", seen)
	t.Logf("%d requests through 15 reloads, %d failed", ok.Load(), failed.Load())
	assert.Zero(t, otherToken.Load(), "route one's credentials never changed, so its first token served every request")
	require.NoError(t, r.stop(t))
}

func TestReloadPicksUpASecretRotatedByASymlinkSwap(t *testing.T) {
	supplier := authEcho(t)
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	// The layout the kubelet gives a Secret volume: files are symlinks into ..data, itself a symlink.
	require.NoError(t, os.MkdirAll(filepath.Join(secrets, "..2026_11_22_01"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(secrets, "..2026_11_22_01", "client-secret"), []byte("first-secret\n"), 0o600))
	require.NoError(t, os.Symlink("..2026_11_22_01", filepath.Join(secrets, "..data")))
	require.NoError(t, os.Symlink("..data/client-secret", filepath.Join(secrets, "client-secret")))

	tokens := newOpsTokens(t, map[string]string{"first-secret": "tok-a", "second-secret": "tok-b"})
	config := writeFile(t, dir, "routes.yaml", fmt.Sprintf(`
listen: 127.0.0.1:0
routes:
  - {name: s, hosts: ["%s"], tokenUrl: "%s", clientId: ops, clientSecretFile: secrets/client-secret, authStyle: body}
`, supplier.Listener.Addr(), tokens.URL))
	r := startArgs(t, []string{"-config", config, "-reload-interval", "100ms"})
	c := proxyClient(r.addr)
	_, body := getBody(t, c, supplier.URL+"/")
	require.Equal(t, "auth=Bearer tok-a-1", body)

	// Rotate as the kubelet does: a new timestamped directory, then ..data swapped to it in one rename.
	require.NoError(t, os.MkdirAll(filepath.Join(secrets, "..2026_11_22_02"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(secrets, "..2026_11_22_02", "client-secret"), []byte("second-secret\n"), 0o600))
	require.NoError(t, os.Symlink("..2026_11_22_02", filepath.Join(secrets, "..data_tmp")))
	require.NoError(t, os.Rename(filepath.Join(secrets, "..data_tmp"), filepath.Join(secrets, "..data")))
	require.NoError(t, os.RemoveAll(filepath.Join(secrets, "..2026_11_22_01")))

	r.waitLog(t, "the reload", `"msg":"configuration reloaded"`, `"reason":"files changed"`)
	_, body = getBody(t, c, supplier.URL+"/")
	assert.Equal(t, "auth=Bearer tok-b-2", body, "the new secret got a new token on the next request")
	assert.Equal(t, []string{"first-secret", "second-secret"}, secretsSent(tokens))
	assert.NotContains(t, r.logs(), "second-secret")
	require.NoError(t, r.stop(t))
}

func TestAnInvalidReloadKeepsTheConfigurationInService(t *testing.T) {
	one, two := authEcho(t), authEcho(t)
	routesOne := routeYAML("one", one.Listener.Addr().String(), "TOKENS", "")
	r := startReloadable(t, routesOne, "-reload-interval", "50ms")
	c := proxyClient(r.addr)
	_, body := getBody(t, c, one.URL+"/")
	require.Equal(t, "auth=Bearer tok-a-1", body)

	r.write(t, "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nroutes:\n"+routesOne+"  - name: two\n    tokenPth: x\n")
	r.waitLog(t, "the first problem", `"msg":"configuration reload refused; the previous configuration keeps serving"`,
		`"problem":"`+r.config+`:6: routes[1].tokenPth: unknown key; did you mean tokenPath?"`)
	r.waitLog(t, "the second problem", `"problem":"`+r.config+`:5: routes[1].hosts: required key is missing"`)
	_, body = getBody(t, c, one.URL+"/")
	assert.Equal(t, "auth=Bearer tok-a-1", body, "the old configuration still serves")
	m, _ := scrape(t, r.admin)
	assert.Equal(t, 1.0, value(m, "tokenproxy_config_reloads_total", "result", "failure"))

	// Fixed: the next poll loads it.
	r.write(t, "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nroutes:\n"+routesOne+routeYAML("two", two.Listener.Addr().String(), "TOKENS", ""))
	r.waitLog(t, "the fixed file loaded", `"msg":"configuration reloaded"`)
	_, body = getBody(t, c, two.URL+"/")
	assert.True(t, strings.HasPrefix(body, "auth=Bearer tok-a-"), body)
	m, _ = scrape(t, r.admin)
	assert.Equal(t, 1.0, value(m, "tokenproxy_config_reloads_total", "result", "success"))
	require.NoError(t, r.stop(t))
}

func TestSIGHUPReloadsAndDoesNotExit(t *testing.T) {
	one, two := authEcho(t), authEcho(t)
	routesOne := routeYAML("one", one.Listener.Addr().String(), "TOKENS", "")
	r := startReloadable(t, routesOne, "-reload-interval", "0")
	c := proxyClient(r.addr)
	r.write(t, "listen: 127.0.0.2:1\nadmin: 127.0.0.1:0\nroutes:\n"+routesOne+routeYAML("two", two.Listener.Addr().String(), "TOKENS", ""))

	require.NoError(t, r.cmd.Process.Signal(syscall.SIGHUP))
	r.waitLog(t, "the reload", `"msg":"configuration reloaded"`, `"reason":"SIGHUP"`)
	r.waitLog(t, "the listen warning", `"msg":"listen cannot change without a restart; still listening on the old address"`)
	_, body := getBody(t, c, two.URL+"/")
	assert.True(t, strings.HasPrefix(body, "auth=Bearer tok-a-"), body)
	select {
	case err := <-r.done:
		t.Fatalf("SIGHUP ended the process: %v", err)
	default:
	}
	require.NoError(t, r.stop(t))
}
