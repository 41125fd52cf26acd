package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tokenproxy/tokenproxy/internal/certgen"
)

// fixture is what every measurement runs against: the tokenproxy binary built from this checkout, its CA,
// the upstream (plain matched, plain unmatched, TLS) and the minimal proxy, each a process of its own.
type fixture struct {
	dir      string
	root     string // the module's root directory
	binary   string
	caDir    string
	upCert   string // the upstream's certificate, which tokenproxy trusts through SSL_CERT_FILE
	upstream *process
	minimal  *process
	matched  string // host:port of the upstream on a route
	other    string // host:port of the upstream on no route
	secure   string // host:port of the upstream's TLS port, on the route
	upTLS    *tls.Config
	viaCA    *tls.Config // trusts tokenproxy's CA, for intercepted connections
	mu       sync.Mutex
	started  []*process // stopped by close, last first
}

// track has close stop p; the token economy starts proxies from several goroutines.
func (f *fixture) track(p *process) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, p)
}

func newFixture(dir string) (*fixture, error) {
	f := &fixture{dir: dir}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		return nil, fmt.Errorf("run the harness from inside the tokenproxy module (go env GOMOD: %v)", err)
	}
	f.root = filepath.Dir(strings.TrimSpace(string(out)))
	f.binary = filepath.Join(dir, "tokenproxy")
	// Built as the Dockerfile builds it: static, no cgo, no symbol tables.
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", f.binary, ".")
	build.Dir = f.root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	f.caDir = filepath.Join(dir, "ca")
	if out, err := exec.Command(f.binary, "ca", "-out", f.caDir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("tokenproxy ca: %v\n%s", err, out)
	}
	caPEM, err := os.ReadFile(filepath.Join(f.caDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	caPool := x509.NewCertPool()
	caPool.AppendCertsFromPEM(caPEM)
	f.viaCA = &tls.Config{RootCAs: caPool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}

	cert, err := certgen.New(certgen.Spec{CommonName: "127.0.0.1", Hosts: []string{"127.0.0.1"}, CA: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, Valid: 24 * time.Hour}, nil)
	if err != nil {
		return nil, err
	}
	keyPEM, err := certgen.KeyPEM(cert)
	if err != nil {
		return nil, err
	}
	f.upCert = filepath.Join(dir, "upstream.crt")
	upKey := filepath.Join(dir, "upstream.key")
	if err := os.WriteFile(f.upCert, certgen.CertPEM(cert), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(upKey, keyPEM, 0o600); err != nil {
		return nil, err
	}
	upPool := x509.NewCertPool()
	upPool.AddCert(cert.Leaf)
	f.upTLS = &tls.Config{RootCAs: upPool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}

	if f.upstream, err = startRole("upstream", "BENCH_CERT="+f.upCert, "BENCH_KEY="+upKey); err != nil {
		return nil, err
	}
	f.track(f.upstream)
	if len(f.upstream.addrs) != 3 {
		return nil, fmt.Errorf("the upstream listens on %v, want 3 addresses", f.upstream.addrs)
	}
	f.matched, f.other, f.secure = f.upstream.addrs[0], f.upstream.addrs[1], f.upstream.addrs[2]
	if f.minimal, err = startRole("minimal"); err != nil {
		return nil, err
	}
	f.track(f.minimal)
	return f, nil
}

// tokenproxy is a running tokenproxy with its proxy and admin addresses.
type tokenproxy struct {
	*process
	addr, admin string
}

// startTokenproxy runs the built binary with one route for the upstream's matched and TLS ports, logging
// at level into a file (as a container runtime would take it).
func (f *fixture) startTokenproxy(name, level string) (*tokenproxy, error) {
	return f.runTokenproxy(name, level, fmt.Sprintf(`
  - name: bench
    hosts: ["%s", "%s"]
    tokenUrl: http://%s/token
    clientId: bench
    clientSecret: bench-secret
`, f.matched, f.secure, f.matched))
}

// runTokenproxy runs the built binary on loopback ports of its own with routes (the YAML list under
// routes:) and the fixture's CA, and waits until it is ready.
func (f *fixture) runTokenproxy(name, level, routes string) (*tokenproxy, error) {
	return f.runTokenproxyWith(name, level, "", routes, nil)
}

// runTokenproxyWith is runTokenproxy with more top-level keys of routes.yaml (top, whole lines) and more
// environment.
func (f *fixture) runTokenproxyWith(name, level, top, routes string, env []string) (*tokenproxy, error) {
	// A free port can be taken between freeAddr and the process's listen when many start at once: try
	// again on other ports.
	var err error
	for range 3 {
		var tp *tokenproxy
		if tp, err = f.startOnFreePorts(name, level, top, routes, env); err == nil {
			return tp, nil
		}
	}
	return nil, err
}

func (f *fixture) startOnFreePorts(name, level, top, routes string, env []string) (*tokenproxy, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf("listen: %s\nadmin: %s\n%smitm:\n  caCert: %s\n  caKey: %s\nroutes:%s",
		addr, admin, top, filepath.Join(f.caDir, "ca.crt"), filepath.Join(f.caDir, "ca.key"), routes)
	file := filepath.Join(f.dir, name+".yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p, err := startCommand(name, addr, filepath.Join(f.dir, name+".log"), append([]string{"SSL_CERT_FILE=" + f.upCert}, env...),
		f.binary, "-config", file, "-log-level", level)
	if err != nil {
		return nil, err
	}
	f.track(p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := waitReady(ctx, admin); err != nil {
		p.stop()
		return nil, err
	}
	return &tokenproxy{process: p, addr: addr, admin: admin}, nil
}

func (f *fixture) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.started) - 1; i >= 0; i-- {
		f.started[i].stop()
	}
}
