package binary

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

func TestBinaryInjectsTokenAndStopsCleanly(t *testing.T) {
	tokens := testkit.NewTokenServer(t, func(_ int64, req testkit.TokenRequest, w http.ResponseWriter) {
		if req.Form.Get("client_secret") != binSecret || req.Form.Get("client_id") != "bin-client" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{"token":"bin-token-1"},"expires_in":"600"}`)
	})
	supplier := testkit.NewUpstream(t, testkit.UpstreamOptions{Handler: func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "supplier says hi")
	}})

	dir := t.TempDir()
	writeFile(t, dir, "secret", binSecret+"\n")
	config := writeFile(t, dir, "routes.yaml", fmt.Sprintf(`
listen: 127.0.0.1:0
routes:
  - name: supplier
    hosts: ["%s"]
    tokenUrl: %s/token
    clientId: ${BIN_CLIENT}
    clientSecretFile: secret
    authStyle: body
    tokenPath: data.token
`, supplier.Listener.Addr(), tokens.URL))
	r := start(t, config, "BIN_CLIENT=bin-client")

	proxyURL, _ := url.Parse("http://" + r.addr)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	for i := 0; i < 2; i++ {
		resp, err := client.Get(supplier.URL + "/v2/items?page=2")
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "supplier says hi", string(body))
	}
	for _, got := range supplier.Requests() {
		assert.Equal(t, "Bearer bin-token-1", got.Header.Get("Authorization"))
		assert.Equal(t, "/v2/items?page=2", got.RequestURI)
	}
	assert.Len(t, supplier.Requests(), 2)
	assert.EqualValues(t, 1, tokens.Count.Load())

	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-r.done:
		assert.NoError(t, err, "SIGTERM ends with exit code 0")
	case <-time.After(35 * time.Second):
		t.Fatal("tokenproxy did not stop after SIGTERM")
	}
	logs := r.logs()
	assert.Contains(t, logs, `"msg":"request","route":"supplier","method":"GET"`)
	assert.Contains(t, logs, `"token":"fetch"`)
	assert.Contains(t, logs, `"token":"hit"`)
	assert.Contains(t, logs, `"msg":"stopped"`)
	assert.NotContains(t, logs, binSecret)
	assert.NotContains(t, logs, "bin-token-1")
}

func TestBinaryVerifiesUpstreamsWithSSLCertFile(t *testing.T) {
	upstream := testkit.SelfSigned(t, "upstream")
	certPEM, cert := string(upstream.PEM), *upstream.TLS
	supplier := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "tls:"+r.Header.Get("Authorization"))
	}))
	supplier.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	supplier.StartTLS()
	defer supplier.Close()
	tokens := testkit.NewTokenServer(t, func(_ int64, _ testkit.TokenRequest, w http.ResponseWriter) {
		_, _ = io.WriteString(w, `{"access_token":"tls-token"}`)
	})

	dir := t.TempDir()
	caFile := writeFile(t, dir, "upstream.pem", certPEM)
	config := writeFile(t, dir, "routes.yaml", fmt.Sprintf(`
listen: 127.0.0.1:0
routes:
  - name: secure
    hosts: ["%s"]
    tokenUrl: %s
    clientId: c
    clientSecret: s
    upstreamTLS: true
`, supplier.Listener.Addr(), tokens.URL))

	for _, tc := range []struct {
		env    string
		status int
		body   string
	}{
		{"SSL_CERT_FILE=" + caFile, http.StatusOK, "tls:Bearer tls-token"},
		{"SSL_CERT_FILE=" + filepath.Join(dir, "routes.yaml"), http.StatusBadGateway, "certificate"},
	} {
		r := start(t, config, tc.env, "SSL_CERT_DIR="+t.TempDir()) // only SSL_CERT_FILE decides
		proxyURL, _ := url.Parse("http://" + r.addr)
		client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
		resp, err := client.Get("http://" + supplier.Listener.Addr().String() + "/")
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, tc.status, resp.StatusCode)
		assert.Contains(t, string(body), tc.body)
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		<-r.done
	}
}

func TestBinaryConfigErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	config := writeFile(t, dir, "routes.yaml", `
routes:
  - name: a
    hosts: [a.example]
    tokenUrl: http://auth.example/token
    clientId: c
    clientSecret: ${DEFINITELY_UNSET_VAR}
    tokenPth: x
`)
	cmd := exec.Command(binary, "-config", config)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 2, exit.ExitCode())
	assert.Equal(t, config+":5: routes[0].tokenUrl: must use https (plain http is allowed only for localhost, 127.0.0.0/8 and ::1)\n"+
		config+":7: routes[0].clientSecret: environment variable DEFINITELY_UNSET_VAR is not set\n"+
		config+":8: routes[0].tokenPth: unknown key; did you mean tokenPath?\n", string(out))
}

func TestBinaryConfigFromEnvironment(t *testing.T) {
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(), "TOKENPROXY_CONFIG="+filepath.Join(t.TempDir(), "elsewhere.yaml"))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 2, exit.ExitCode())
	assert.Contains(t, string(out), "elsewhere.yaml: cannot read")
}

func TestANonLoopbackListenNeedsClients(t *testing.T) {
	config := writeFile(t, t.TempDir(), "routes.yaml", "listen: 0.0.0.0:0\nroutes: []\n")
	code, _, errOut := runBinary(t, "", nil, "-config", config)
	assert.Equal(t, 2, code)
	assert.Equal(t, config+`:1: listen: "0.0.0.0:0" is not a loopback address, so other machines could spend the routes' tokens: `+
		"add clients (who may use the proxy, by address or proxyAuth), or listen on 127.0.0.1\n", errOut)
}
