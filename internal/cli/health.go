package cli

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/runstate"
)

// runHealth asks the running proxy's admin endpoint whether it is ready: exit 0 when it is, 1 otherwise. It
// is the probe for images without a shell or curl (exec probes, compose healthchecks).
func runHealth(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy health", "tokenproxy health [-config F] [-timeout D]", stderr)
	path := fs.String("config", envOr("TOKENPROXY_CONFIG", "routes.yaml"), "the routes file whose admin address to ask (or set $TOKENPROXY_CONFIG)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	addr, err := adminAddress(*path)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy health: %v\n", err)
		return 1
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{Proxy: nil}}
	url := "http://" + dialable(addr) + "/readyz"
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy health: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "tokenproxy health: %s answered %d: %s", url, resp.StatusCode, body)
		return 1
	}
	fmt.Fprintf(stdout, "%s", body)
	return 0
}

// adminAddress is where the proxy serving the routes file path answers admin requests: the address it
// recorded at start, since a reload that changed admin in the file does not move it; without a record
// (none, or in a directory open to others), the file's.
func adminAddress(path string) (string, error) {
	if rec, ok, err := runstate.Read(path); err == nil && ok {
		if rec.Admin == "" {
			return "", fmt.Errorf("the tokenproxy serving %s started without admin endpoints; admin: host:port takes a restart", path)
		}
		return rec.Admin, nil
	}
	return config.ReadAdmin(path, nil)
}

// dialable turns a listen address into one to dial: an unspecified host (all interfaces) is this machine.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if ip != nil && ip.To4() == nil {
			return net.JoinHostPort("::1", port)
		}
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}
