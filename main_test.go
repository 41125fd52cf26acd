package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

const binSecret = "binary-test-secret-77"

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokenproxy-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "tokenproxy")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// running is a started tokenproxy binary whose JSON log lines are collected.
type running struct {
	cmd   *exec.Cmd
	addr  string // the proxy's
	admin string // the admin endpoints', when configured
	mu    sync.Mutex
	lines []string
	done  chan error
}

func (r *running) logs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

func start(t *testing.T, config string, env ...string) *running {
	return startArgs(t, []string{"-config", config}, env...)
}

// startArgs starts the binary with args (and JSON logs) and waits until it listens.
func startArgs(t *testing.T, args []string, env ...string) *running {
	cmd := exec.Command(binary, append(args, "-log-format", "json")...)
	// A TMPDIR of the test's own keeps the record health reads (internal/runstate) out of the machine's /tmp.
	cmd.Env = append(append(os.Environ(), "TMPDIR="+t.TempDir()), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	r := &running{cmd: cmd, done: make(chan error, 1)}
	type listen struct{ Msg, Addr, Admin string }
	listening := make(chan listen, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, sc.Text())
			r.mu.Unlock()
			var line listen
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				listening <- line
			}
		}
		r.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case l := <-listening:
		r.addr, r.admin = l.Addr, l.Admin
	case err := <-r.done:
		t.Fatalf("tokenproxy exited before listening: %v\n%s", err, r.logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("tokenproxy did not start listening:\n%s", r.logs())
	}
	return r
}

// waitLog waits until a log line contains every one of parts, and returns it.
func (r *running) waitLog(t *testing.T, what string, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if line, ok := r.findLog(parts...); ok {
			return line
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 20s for %s; logs:\n%s", what, r.logs())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countLog counts the log lines that contain every one of parts.
func (r *running) countLog(parts ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
lines:
	for _, l := range r.lines {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue lines
			}
		}
		n++
	}
	return n
}

func (r *running) findLog(parts ...string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
lines:
	for _, l := range r.lines {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue lines
			}
		}
		return l, true
	}
	return "", false
}

// stop sends SIGTERM and waits for the exit code.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-r.done:
		return err
	case <-time.After(35 * time.Second):
		t.Fatal("tokenproxy did not stop after SIGTERM")
		return nil
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestBinaryInjectsTokenAndStopsCleanly(t *testing.T) {
	var tokenRequests int
	var mu sync.Mutex
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tokenRequests++
		mu.Unlock()
		if r.ParseForm() != nil || r.PostForm.Get("client_secret") != binSecret || r.PostForm.Get("client_id") != "bin-client" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{"token":"bin-token-1"},"expires_in":"600"}`)
	}))
	defer tokens.Close()
	var gotAuth, gotPath string
	supplier := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotAuth, gotPath = r.Header.Get("Authorization"), r.URL.RequestURI()
		mu.Unlock()
		_, _ = io.WriteString(w, "supplier says hi")
	}))
	defer supplier.Close()

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
	mu.Lock()
	assert.Equal(t, "Bearer bin-token-1", gotAuth)
	assert.Equal(t, "/v2/items?page=2", gotPath)
	assert.Equal(t, 1, tokenRequests)
	mu.Unlock()

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
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"access_token":"tls-token"}`)
	}))
	defer tokens.Close()

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

func TestBinaryWritesCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	out, err := exec.Command(binary, "ca", "-out", dir).CombinedOutput()
	require.NoError(t, err, string(out))
	key, err := os.Stat(filepath.Join(dir, "ca.key"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), key.Mode().Perm())
	pemBytes, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	require.NoError(t, err)
	block, _ := pem.Decode(pemBytes)
	require.NotNil(t, block)
	ca, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	assert.True(t, ca.IsCA)
	assert.Equal(t, x509.ECDSA, ca.PublicKeyAlgorithm)

	for _, f := range []string{"bundle.pem", "truststore.p12"} {
		info, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, f)
		assert.Equal(t, os.FileMode(0o644), info.Mode().Perm(), f)
	}
	if keytool, err := exec.LookPath("keytool"); err == nil {
		out, err := exec.Command(keytool, "-list", "-keystore", filepath.Join(dir, "truststore.p12"), "-storepass", "changeit").CombinedOutput()
		require.NoError(t, err, string(out))
		assert.Contains(t, string(out), "tokenproxy-interception-ca")
		var entries int
		_, err = fmt.Sscanf(string(out[strings.Index(string(out), "Your keystore contains"):]), "Your keystore contains %d entries", &entries)
		require.NoError(t, err)
		assert.Greater(t, entries, 100, "Java keeps the system's roots: the keytool recipe of old left it one")
	}

	out, err = exec.Command(binary, "ca").CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "-out DIR is required")
}
