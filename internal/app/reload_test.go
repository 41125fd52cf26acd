package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/admin"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/buildinfo"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
	"github.com/tokenproxy/tokenproxy/mitm"
	"github.com/tokenproxy/tokenproxy/proxy"
	"github.com/tokenproxy/tokenproxy/secrets"
)

// newTestReloader loads the routes.yaml at path (with keyFile when not empty), puts it in service on a
// proxy, and returns a reloader of it whose log goes to log (nil: nowhere).
func newTestReloader(t *testing.T, path, keyFile string, log io.Writer) *reloader {
	t.Helper()
	if log == nil {
		log = io.Discard
	}
	files := ConfigFiles{Path: path, SecretKeyFile: keyFile}
	loaded, err := files.Load()
	require.NoError(t, err)
	cfg, err := config.Resolve(context.Background(), loaded, nil, nil)
	require.NoError(t, err)
	srv, err := proxy.New(cfg, proxy.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	p := &running{srv: srv, metrics: admin.NewMetrics(buildinfo.Read()), log: slog.New(slog.NewTextHandler(log, nil))}
	return newReloader(files.Load, p, cfg, loaded.Sources)
}

// reloads counts the reloader's reloads with result success or failure.
func (r *reloader) reloads(t *testing.T, result string) float64 {
	return counterValue(t, r.metrics, "tokenproxy_config_reloads_total", result)
}

// pollChange polls twice after files changed: the first poll only reads them (checked here), the second
// finds them the same and loads them.
func (r *reloader) pollChange(t *testing.T) {
	t.Helper()
	before := r.reloads(t, "success") + r.reloads(t, "failure")
	r.poll(context.Background())
	require.Equal(t, before, r.reloads(t, "success")+r.reloads(t, "failure"), "the first poll to see a change loads nothing")
	r.poll(context.Background())
}

// The reloader driven poll by poll: a refused file is tried once, not at every poll, and again when it
// changes.
func TestAReloaderTriesARefusedFileOncePerChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "routes.yaml")
	good := "routes:\n  - name: a\n    hosts: [a.example]\n    tokenUrl: https://auth.example/t\n    clientId: c\n    clientSecret: s\n"
	require.NoError(t, os.WriteFile(path, []byte(good), 0o600))
	r := newTestReloader(t, path, "", nil)
	srv := r.srv

	ctx := context.Background()
	poll := func() { r.poll(ctx) }
	reloads := func(result string) float64 { return r.reloads(t, result) }

	poll()
	assert.Zero(t, reloads("success")+reloads("failure"), "nothing changed, nothing loaded")

	require.NoError(t, os.WriteFile(path, []byte(good+"    tokenPth: x\n"), 0o600))
	for range 5 {
		poll()
	}
	assert.Equal(t, 1.0, reloads("failure"), "five polls, one attempt: the file did not change again")

	require.NoError(t, os.WriteFile(path, []byte(good+"    scop: x\n"), 0o600))
	r.pollChange(t)
	assert.Equal(t, 2.0, reloads("failure"), "changed, still broken: tried again")

	require.NoError(t, os.WriteFile(path, []byte(good+"    scope: x\n"), 0o600))
	r.pollChange(t)
	poll()
	assert.Equal(t, 1.0, reloads("success"))
	assert.Equal(t, "x", srv.Config().Routes[0].Token.Scope)

	assert.Nil(t, r.failed)

	// Wired to its channels: a signal reloads at once, even when nothing changed; a tick polls, and a
	// change is loaded at the second.
	tick, hup := make(chan time.Time), make(chan os.Signal)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(runCtx, tick, hup)
	}()
	hup <- os.Interrupt
	require.Eventually(t, func() bool { return reloads("success") == 2 }, 10*time.Second, time.Millisecond)
	require.NoError(t, os.WriteFile(path, []byte(good), 0o600))
	tick <- time.Now()
	tick <- time.Now()
	require.Eventually(t, func() bool { return reloads("success") == 3 }, 10*time.Second, time.Millisecond)
	cancel()
	<-done
	assert.Empty(t, srv.Config().Routes[0].Token.Scope)
}

func counterValue(t *testing.T, m *admin.Metrics, name, result string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return s.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{result=%q}", name, result)
	return 0
}

// The clients rules go with the address tokenproxy actually listens on: a reload cannot drop them by
// moving listen to loopback, which only a restart would do.
func TestAReloadCannotDropTheClientsOfAPublicListener(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "routes.yaml")
	routes := "routes:\n  - name: a\n    hosts: [a.example]\n    tokenUrl: https://auth.example/t\n    clientId: c\n    clientSecret: s\n"
	public := "listen: 0.0.0.0:3128\nclients:\n  - {name: ci, cidrs: [10.0.0.0/8]}\n" + routes
	require.NoError(t, os.WriteFile(path, []byte(public), 0o600))
	var logs testkit.LogBuffer
	r := newTestReloader(t, path, "", &logs)
	srv := r.srv

	require.NoError(t, os.WriteFile(path, []byte("listen: 127.0.0.1:3128\n"+routes), 0o600))
	r.pollChange(t)
	assert.Equal(t, 1.0, r.reloads(t, "failure"))
	assert.Len(t, srv.Config().Clients, 1, "the rules stay in service")
	assert.Contains(t, logs.String(), "tokenproxy listens on 0.0.0.0:3128, beyond loopback, until a restart: the new configuration needs clients")

	require.NoError(t, os.WriteFile(path, []byte(routes), 0o600))
	r.pollChange(t)
	assert.Equal(t, 2.0, r.reloads(t, "failure"), "nor by leaving listen out")
}

// Reloads do not depend on issuers that did not change, and one that was out of reach is asked again on a
// backoff, without any file changing.
func TestReloadsAndIssuerDiscovery(t *testing.T) {
	var up atomic.Bool
	up.Store(true)
	var discoveries atomic.Int64
	var issuer *httptest.Server
	issuer = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		discoveries.Add(1)
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/.well-known/openid-configuration")
		_, _ = io.WriteString(w, `{"issuer":"`+issuer.URL+"/"+name+`","token_endpoint":"`+issuer.URL+"/"+name+`/token"}`)
	}))
	defer issuer.Close()
	route := func(name, scope string) string {
		return fmt.Sprintf("  - {name: %s, hosts: [%s.example], issuer: %q, clientId: c, clientSecret: s, scope: %s}\n", name, name, issuer.URL+"/"+name, scope)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "routes.yaml")
	require.NoError(t, os.WriteFile(path, []byte("routes:\n"+route("a", "one")), 0o600))
	r := newTestReloader(t, path, "", nil)
	srv := r.srv
	now := time.Unix(1_800_000_000, 0)
	r.now = func() time.Time { return now }
	reloads := func(result string) float64 { return r.reloads(t, result) }
	ctx := context.Background()

	up.Store(false)
	before := discoveries.Load()
	require.NoError(t, os.WriteFile(path, []byte("routes:\n"+route("a", "two")), 0o600))
	r.pollChange(t)
	assert.Equal(t, 1.0, reloads("success"), "a scope change needs no discovery of the unchanged issuer")
	assert.Equal(t, before, discoveries.Load())
	assert.Equal(t, "two", srv.Config().Routes[0].Token.Scope)

	require.NoError(t, os.WriteFile(path, []byte("routes:\n"+route("a", "two")+route("b", "x")), 0o600))
	r.pollChange(t)
	assert.Equal(t, 1.0, reloads("failure"), "route b's issuer is out of reach")
	r.poll(ctx)
	assert.Equal(t, 1.0, reloads("failure"), "not asked again before the backoff")
	up.Store(true)
	now = now.Add(discoveryRetryMin)
	r.poll(ctx)
	assert.Equal(t, 2.0, reloads("success"), "asked again after the backoff, with no file changed")
	assert.Equal(t, issuer.URL+"/b/token", srv.Config().Route("b").Token.TokenURL)
}

// An unreadable secret key file is tried once per change, like any source, and a new key reloads.
func TestTheSecretKeyFileIsASource(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "routes.yaml")
	require.NoError(t, os.WriteFile(path, []byte("routes:\n  - name: a\n    hosts: [a.example]\n    tokenUrl: https://auth.example/t\n    clientId: c\n    clientSecret: s\n"), 0o600))
	keyFile := filepath.Join(dir, "key")
	key, err := secrets.NewKey()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, []byte(key), 0o600))
	r := newTestReloader(t, path, keyFile, nil)
	reloads := func(result string) float64 { return r.reloads(t, result) }

	require.NoError(t, os.Remove(keyFile))
	for range 5 {
		r.poll(context.Background())
	}
	assert.Equal(t, 1.0, reloads("failure"), "five polls, one attempt")
	newKey, err := secrets.NewKey()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, []byte(newKey), 0o600))
	r.pollChange(t)
	assert.Equal(t, 1.0, reloads("success"), "the key file came back")
}

// Each file the configuration was read from is watched: the interception CA, a client certificate and its
// key, and a private-key-jwt key. Changing one reloads at the second poll, with the new content in service
// when that poll returns; a poll with nothing changed loads nothing.
func TestEveryFileOfTheConfigurationIsWatched(t *testing.T) {
	dir := t.TempDir()
	_, _, err := mitm.WriteCA(filepath.Join(dir, "ca"))
	require.NoError(t, err)
	writeCert := func(c *testkit.Cert, name string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".crt"), c.PEM, 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".key"), c.KeyPEM(t), 0o600))
	}
	writeCert(testkit.SelfSigned(t, "client"), "client")
	writeCert(testkit.SelfSigned(t, "signer"), "signer")
	path := filepath.Join(dir, "routes.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
mitm: {caCert: ca/ca.crt, caKey: ca/ca.key}
routes:
  - {name: mtls, hosts: [a.example], tokenUrl: "https://auth.example/t", clientId: c, authStyle: tls-client-auth,
     clientCertFile: client.crt, clientKeyFile: client.key}
  - {name: jwt, hosts: [b.example], tokenUrl: "https://auth.example/t", clientId: c, authStyle: private-key-jwt,
     clientKeyFile: signer.key}
`), 0o600))
	r := newTestReloader(t, path, "", nil)
	ctx := context.Background()
	cfg := func() *config.Config { return r.srv.Config() }
	reloads := 0.0
	pollReloads := func(what string) {
		t.Helper()
		r.pollChange(t)
		reloads++
		require.Equal(t, reloads, r.reloads(t, "success"), what)
	}

	r.poll(ctx)
	require.Zero(t, r.reloads(t, "success"), "nothing changed")

	oldCA := cfg().MITM.CA.Leaf.SerialNumber
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "ca")))
	_, _, err = mitm.WriteCA(filepath.Join(dir, "ca"))
	require.NoError(t, err)
	pollReloads("a new CA")
	assert.NotEqual(t, oldCA, cfg().MITM.CA.Leaf.SerialNumber)

	oldCert := cfg().Routes[0].Token.ClientCert.Leaf.SerialNumber
	writeCert(testkit.SelfSigned(t, "client"), "client")
	pollReloads("a new client certificate and key")
	assert.NotEqual(t, oldCert, cfg().Routes[0].Token.ClientCert.Leaf.SerialNumber)

	// The key alone changes (to one that does not match the certificate): watched too, and refused.
	writeCert(testkit.SelfSigned(t, "other"), "other")
	key, err := os.ReadFile(filepath.Join(dir, "other.key"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "client.key"), key, 0o600))
	r.pollChange(t)
	assert.Equal(t, 1.0, r.reloads(t, "failure"), "the key file alone is watched")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "client.crt"), must(os.ReadFile(filepath.Join(dir, "other.crt"))), 0o600))
	pollReloads("the matching certificate")
	oldSigner := cfg().Routes[1].Token.ClientKey
	writeCert(testkit.SelfSigned(t, "signer"), "signer")
	pollReloads("a new signing key")
	assert.NotEqual(t, oldSigner, cfg().Routes[1].Token.ClientKey)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A reload compares the store as the store reads it: writing out the default key prefix changes nothing.
func TestStoreOfComparesTheEffectiveKeyPrefix(t *testing.T) {
	assert.Equal(t, storeOf(&config.Config{Store: &config.Store{URL: "redis://r:6379"}}),
		storeOf(&config.Config{Store: &config.Store{URL: "redis://r:6379", KeyPrefix: "tokenproxy:"}}))
	assert.NotEqual(t, storeOf(&config.Config{Store: &config.Store{URL: "redis://r:6379"}}),
		storeOf(&config.Config{Store: &config.Store{URL: "redis://r:6379", KeyPrefix: "team-a:"}}))
	assert.Empty(t, storeOf(&config.Config{}))
}
