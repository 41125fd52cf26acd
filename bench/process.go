package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tokenproxy/tokenproxy/internal/minproxy"
)

// roleEnv makes the harness's own binary run as one of its helper processes: the upstream, the minimal
// proxy or the bare one, each in a process of its own so that the load generator's garbage collection is not theirs.
const roleEnv = "TOKENPROXY_BENCH_ROLE"

// bareAuthorization is what the bare proxy puts on every request: the header tokenproxy sends with the token
// endpoint's answer below.
const bareAuthorization = "Bearer bench-token"

// answerBody is what the upstream sends for every request: 1 KiB, as in the proxy package's benchmarks.
var answerBody = strings.Repeat("x", 1024)

func upstreamHandler(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if r.URL.Path == "/token" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"bench-token","token_type":"Bearer","expires_in":86400}`)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, answerBody)
}

// runRole serves a role until the parent closes its standard input, and prints the addresses it listens on
// as its first line of output.
func runRole(role string) int {
	var addrs []string
	listen := func(h http.Handler, tlsConf *tls.Config) error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		if tlsConf != nil {
			ln = tls.NewListener(ln, tlsConf)
		}
		addrs = append(addrs, ln.Addr().String())
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
		go func() { _ = srv.Serve(ln) }()
		return nil
	}
	var err error
	switch role {
	case "upstream":
		// A matched and an unmatched plain port, then a TLS port with the certificate the parent wrote.
		for range 2 {
			if err = listen(http.HandlerFunc(upstreamHandler), nil); err != nil {
				break
			}
		}
		if err == nil {
			var cert tls.Certificate
			if cert, err = tls.LoadX509KeyPair(os.Getenv("BENCH_CERT"), os.Getenv("BENCH_KEY")); err == nil {
				err = listen(http.HandlerFunc(upstreamHandler), &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
			}
		}
	case "h2upstream":
		// Two TLS ports that speak HTTP/2, for the stall part: the supplier of 5 MiB answers and another one.
		var cert tls.Certificate
		if cert, err = tls.LoadX509KeyPair(os.Getenv("BENCH_CERT"), os.Getenv("BENCH_KEY")); err == nil {
			for range 2 {
				if err = listen(http.HandlerFunc(stallHandler), &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}); err != nil {
					break
				}
			}
		}
	case "minimal":
		err = listen(minproxy.New(64), nil)
	case "bare":
		err = listen(minproxy.Bare(64, bareAuthorization), nil)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench role:", err)
		return 1
	}
	fmt.Println(strings.Join(addrs, " "))
	_, _ = io.Copy(io.Discard, os.Stdin) // the parent's end closes at exit, and so does this process
	return 0
}

// process is a child of the harness: tokenproxy, a peer proxy, or the harness in a role.
type process struct {
	name  string
	cmd   *exec.Cmd
	addrs []string
	stdin io.Closer
	done  chan error
}

// startRole runs the harness's own binary in role and waits for the addresses it listens on.
func startRole(role string, env ...string) (*process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &process{name: role, cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.done <- cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("%s did not start: %w", role, err)
	}
	p.addrs = strings.Fields(line)
	return p, nil
}

// startCommand runs a program (with env added to the harness's) that listens on addr, and waits until it
// accepts connections.
func startCommand(name, addr, logFile string, env []string, argv ...string) (*process, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	if logFile != "" {
		f, err := os.Create(logFile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	p := &process{name: name, cmd: cmd, addrs: []string{addr}, done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() { p.done <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case err := <-p.done:
			p.done <- err
			return nil, fmt.Errorf("%s exited before listening on %s: %v (see %s)", name, addr, err, logFile)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s does not listen on %s after 20 s (see %s)", name, addr, logFile)
		}
	}
}

// stop asks the process to end (SIGTERM, or the end of its input), and kills it after 10 s.
func (p *process) stop() {
	if p == nil {
		return
	}
	if p.stdin != nil {
		_ = p.stdin.Close()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// rss is the process's resident set in bytes, from /proc.
func (p *process) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// fds counts the process's open file descriptors.
func (p *process) fds() (int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	return len(entries), err
}

// freeAddr finds a loopback port nothing listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitReady polls an admin /readyz until it answers 200.
func waitReady(ctx context.Context, admin string) error {
	for {
		resp, err := plainClient.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tokenproxy on %s is not ready: %v", admin, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
