package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
)

// peer is a proxy people would use instead, for plain forwarding: the harness writes its minimal
// configuration, starts it on loopback in the foreground, and stops it after the run. Install them with
// apt-get install squid tinyproxy haproxy; a peer that is not installed is left out of the table.
type peer struct {
	name    string
	program string
	note    string
	// start writes the configuration into dir and returns the command line serving on addr.
	start func(dir, addr, upstream string) ([]string, error)
}

var peers = []peer{
	{name: "squid", program: "squid", note: "forward proxy, caching off", start: func(dir, addr, _ string) ([]string, error) {
		// Squid drops root for its own user, which must be able to write the pid file and logs.
		if err := os.Chmod(dir, 0o777); err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "squid.conf")
		return []string{"squid", "-N", "-f", conf}, os.WriteFile(conf, []byte(fmt.Sprintf(`http_port %s
http_access allow all
cache deny all
cache_mem 8 MB
access_log none
cache_store_log none
cache_log %s
pid_filename %s
coredump_dir %s
shutdown_lifetime 0 seconds
via off
forwarded_for transparent
`, addr, filepath.Join(dir, "cache.log"), filepath.Join(dir, "squid.pid"), dir)), 0o644)
	}},
	{name: "tinyproxy", program: "tinyproxy", note: "forward proxy", start: func(dir, addr, _ string) ([]string, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "tinyproxy.conf")
		return []string{"tinyproxy", "-d", "-c", conf}, os.WriteFile(conf, []byte(fmt.Sprintf(`Port %s
Listen %s
Timeout 60
MaxClients 1024
LogLevel Error
Allow 127.0.0.1
DisableViaHeader Yes
`, port, host)), 0o644)
	}},
	{name: "haproxy", program: "haproxy", note: "reverse proxy to the one upstream (no forward-proxy mode)", start: func(dir, addr, upstream string) ([]string, error) {
		conf := filepath.Join(dir, "haproxy.cfg")
		return []string{"haproxy", "-db", "-f", conf}, os.WriteFile(conf, []byte(fmt.Sprintf(`global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend bench
  bind %s
  default_backend upstream
backend upstream
  http-reuse always
  server up %s
`, addr, upstream)), 0o644)
	}},
}

// startPeer starts p in a directory of its own, or says why it is left out.
func startPeer(p peer, dir, upstream string) (*process, string, error) {
	path, err := exec.LookPath(p.program)
	if err != nil {
		return nil, "not installed", nil
	}
	pdir := filepath.Join(dir, p.name)
	if err := os.MkdirAll(pdir, 0o777); err != nil {
		return nil, "", err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	argv, err := p.start(pdir, addr, upstream)
	if err != nil {
		return nil, "", err
	}
	argv[0] = path
	proc, err := startCommand(p.name, addr, filepath.Join(pdir, p.name+".out"), nil, argv...)
	return proc, "", err
}
