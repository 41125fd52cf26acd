package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

// The README's quickstart, as a newcomer runs it: this program, tokenproxy with the repository's
// routes.yaml, and curl through the proxy. Only the ports differ (free ones, so the test runs beside
// others); the routes file is the repository's with those ports put in.
func TestTheQuickstartShowsATokenPutOnARequest(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	dir := t.TempDir()
	build := func(pkg, out string) string {
		bin := filepath.Join(dir, out)
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Dir = "../.."
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", b)
		return bin
	}
	proxyBin, quickstartBin := build(".", "tokenproxy"), build("./examples/quickstart", "quickstart")
	tokenPort, supplierPort, proxyPort := freePort(t), freePort(t), freePort(t)

	routes, err := os.ReadFile("../../routes.yaml")
	require.NoError(t, err)
	text := strings.NewReplacer(
		"127.0.0.1:3128", "127.0.0.1:"+proxyPort,
		"127.0.0.1:9001", "127.0.0.1:"+tokenPort,
		"localhost:9002", "localhost:"+supplierPort,
	).Replace(string(routes))
	require.Contains(t, text, `hosts: ["localhost:`+supplierPort+`"]`, "the quickstart route's host was found")
	routesFile := filepath.Join(dir, "routes.yaml")
	require.NoError(t, os.WriteFile(routesFile, []byte(text), 0o600))

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	qs := exec.CommandContext(ctx, quickstartBin, "-token-listen", "127.0.0.1:"+tokenPort, "-supplier-listen", "127.0.0.1:"+supplierPort)
	testkit.DiesWithTest(qs)
	out, err := qs.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, qs.Start())
	t.Cleanup(func() { cancel(); _ = qs.Wait() })
	lines := bufio.NewScanner(out)
	require.True(t, lines.Scan(), "the quickstart says where its token endpoint listens")
	assert.Contains(t, lines.Text(), "127.0.0.1:"+tokenPort+"/oauth/token")
	go func() {
		for lines.Scan() { // keep its output flowing
		}
	}()

	proxy := exec.CommandContext(ctx, proxyBin, "-config", routesFile)
	testkit.DiesWithTest(proxy)
	require.NoError(t, proxy.Start())
	t.Cleanup(func() { cancel(); _ = proxy.Wait() })
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+proxyPort)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 20*time.Second, 20*time.Millisecond, "tokenproxy listens")

	curl := func(args ...string) string {
		b, err := exec.Command("curl", append([]string{"-sS", "--max-time", "10"}, args...)...).CombinedOutput()
		require.NoError(t, err, "%s", b)
		return string(b)
	}
	target := fmt.Sprintf("http://localhost:%s/hello", supplierPort)
	assert.Contains(t, curl(target), "supplier: 401", "without tokenproxy the supplier refuses")
	got := curl("-x", "http://127.0.0.1:"+proxyPort, target)
	assert.Contains(t, got, "supplier: GET /hello accepted")
	assert.Contains(t, got, "Authorization: Bearer qs-", "tokenproxy put the token endpoint's token on the request")
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}
