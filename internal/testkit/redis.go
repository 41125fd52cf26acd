package testkit

import (
	"bufio"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Redis is a redis-server of a test's own on a loopback port, without persistence.
type Redis struct {
	t    testing.TB
	Addr string
	o    RedisOptions
	cmd  *exec.Cmd
}

// RedisOptions make a server that asks more of its clients.
type RedisOptions struct {
	Password string // requirepass: clients must AUTH
	TLS      *Cert  // serve TLS only (rediss://), with this certificate
}

// StartRedis starts a redis-server for t and stops it when t ends. Without the redis-server program
// (Debian package redis-server, which .ci/run installs) the test is skipped.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return StartRedisWith(t, RedisOptions{})
}

// StartRedisWith is StartRedis with a password, TLS or both.
func StartRedisWith(t testing.TB, o RedisOptions) *Redis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Redis{t: t, Addr: ln.Addr().String(), o: o}
	_ = ln.Close()
	t.Cleanup(r.Stop) // before Start: a server that never answers is stopped too
	r.Start()
	return r
}

// Start starts the server (again, after Stop) and waits until it answers PING.
func (r *Redis) Start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.Addr)
	args := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}
	if r.o.Password != "" {
		args = append(args, "--requirepass", r.o.Password)
	}
	if r.o.TLS != nil {
		dir := r.t.TempDir()
		certFile, keyFile := filepath.Join(dir, "redis.crt"), filepath.Join(dir, "redis.key")
		if err := os.WriteFile(certFile, r.o.TLS.PEM, 0o600); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, r.o.TLS.KeyPEM(r.t), 0o600); err != nil {
			r.t.Fatal(err)
		}
		args = append(args, "--port", "0", "--tls-port", port, "--tls-cert-file", certFile, "--tls-key-file", keyFile,
			"--tls-auth-clients", "no")
	} else {
		args = append(args, "--port", port)
	}
	r.cmd = exec.Command("redis-server", args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	WaitFor(r.t, "redis-server on "+r.Addr+" to answer PING", r.pong)
}

func (r *Redis) pong() bool {
	c, err := net.DialTimeout("tcp", r.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if r.o.TLS != nil {
		c = tls.Client(c, &tls.Config{RootCAs: r.o.TLS.Pool(), ServerName: "127.0.0.1"})
	}
	hello := "PING\r\n"
	if r.o.Password != "" {
		hello = "AUTH " + r.o.Password + "\r\n" + hello
	}
	if _, err := c.Write([]byte(hello)); err != nil {
		return false
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err == nil && r.o.Password != "" && line == "+OK\r\n" {
		line, err = br.ReadString('\n')
	}
	return err == nil && line == "+PONG\r\n"
}

// Stop kills the server, as a crash or an eviction of its pod would.
func (r *Redis) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}
