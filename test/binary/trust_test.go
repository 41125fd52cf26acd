package binary

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

// serveTLS starts an https server for 127.0.0.1 with a leaf signed by root.
func serveTLS(t *testing.T, root *testkit.Cert, h http.HandlerFunc) *httptest.Server {
	s := httptest.NewUnstartedServer(h)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{*root.Issue(t, "127.0.0.1").TLS}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// Apps trust tokenproxy through the files `tokenproxy ca` writes and keep trusting every other host: an
// intercepted route host gets the token, a tunnelled host's own certificate still verifies.
func TestAppsTrustTheCAThroughTheWrittenBundles(t *testing.T) {
	root := testkit.CA(t, "Stand-in System Root")
	routed := serveTLS(t, root, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "routed auth="+r.Header.Get("Authorization")+"\n")
	})
	tunnelled := serveTLS(t, root, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "tunnelled auth="+r.Header.Get("Authorization")+"\n")
	})
	tokens := testkit.NewTokenServer(t, func(_ int64, _ testkit.TokenRequest, w http.ResponseWriter) {
		_, _ = io.WriteString(w, `{"access_token":"client-token","expires_in":600}`)
	})

	dir := t.TempDir()
	rootsFile := writeFile(t, dir, "system-roots.pem", string(root.PEM))
	code, out, errOut := runBinary(t, "", nil, "ca", "-out", filepath.Join(dir, "ca"), "-roots", rootsFile)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "bundle.pem (1 roots from "+rootsFile+", then the CA")
	ca := filepath.Join(dir, "ca")
	bundle, store := filepath.Join(ca, "bundle.pem"), filepath.Join(ca, "truststore.p12")

	config := writeFile(t, dir, "routes.yaml", fmt.Sprintf(`
listen: 127.0.0.1:0
mitm: {caCert: ca/ca.crt, caKey: ca/ca.key}
routes:
  - {name: r, hosts: ["%s"], tokenUrl: "%s", clientId: c, clientSecret: s}
`, routed.Listener.Addr(), tokens.URL))
	r := start(t, config, "SSL_CERT_FILE="+rootsFile) // tokenproxy itself trusts the upstreams through the same root
	proxyURL := "http://" + r.addr
	urls := []string{routed.URL + "/", tunnelled.URL + "/"}
	want := func(t *testing.T, out string) {
		t.Helper()
		assert.Contains(t, out, "routed auth=Bearer client-token\n", "the intercepted route host got the token")
		assert.Contains(t, out, "tunnelled auth=\n", "the tunnelled host verified with the app's own roots")
	}
	run := func(t *testing.T, cmd *exec.Cmd) string {
		t.Helper()
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}

	t.Run("curl with CURL_CA_BUNDLE=bundle.pem", func(t *testing.T) {
		needs(t, "curl")
		cmd := exec.Command("curl", "-sS", "--max-time", "20", "-x", proxyURL, urls[0], urls[1])
		cmd.Env = append(os.Environ(), "CURL_CA_BUNDLE="+bundle)
		want(t, run(t, cmd))
	})

	t.Run("python with SSL_CERT_FILE=bundle.pem", func(t *testing.T) {
		needs(t, "python3")
		cmd := exec.Command("python3", "-c", `
import sys, urllib.request
for u in sys.argv[1:]:
    print(urllib.request.urlopen(u, timeout=20).read().decode(), end="")
`, urls[0], urls[1])
		cmd.Env = append(os.Environ(), "HTTPS_PROXY="+proxyURL, "https_proxy="+proxyURL, "NO_PROXY=", "no_proxy=", "SSL_CERT_FILE="+bundle)
		want(t, run(t, cmd))
	})

	t.Run("java with truststore.p12", func(t *testing.T) {
		needs(t, "java")
		src := writeFile(t, t.TempDir(), "Fetch.java", `
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URI;

public class Fetch {
    public static void main(String[] urls) throws Exception {
        for (String u : urls) {
            HttpURLConnection c = (HttpURLConnection) URI.create(u).toURL().openConnection();
            try (InputStream in = c.getInputStream()) {
                System.out.print(new String(in.readAllBytes()));
            }
        }
    }
}
`)
		_, port, _ := net.SplitHostPort(r.addr)
		cmd := exec.Command("java", "-Dhttps.proxyHost=127.0.0.1", "-Dhttps.proxyPort="+port,
			"-Dhttp.nonProxyHosts=", // Java skips the proxy for loopback unless told otherwise
			"-Djavax.net.ssl.trustStore="+store, "-Djavax.net.ssl.trustStorePassword=changeit", src, urls[0], urls[1])
		want(t, run(t, cmd))
	})

	t.Run("node 20 with global-agent and NODE_EXTRA_CA_CERTS=ca.crt", func(t *testing.T) {
		needs(t, "node")
		needs(t, "npm")
		app := t.TempDir()
		// 3.0.0 is the last release whose published package has a working global-agent/bootstrap:
		// 4.0.0 and 4.1.0 lack its dist/, 4.1.3 lacks bootstrap.js.
		install := exec.Command("npm", "install", "--prefix", app, "--no-audit", "--no-fund", "--silent", "global-agent@3.0.0")
		if out, err := install.CombinedOutput(); err != nil {
			t.Fatalf("npm install global-agent: %v\n%s", err, out)
		}
		writeFile(t, app, "fetch.js", `
const https = require('https');
(async () => {
  for (const u of process.argv.slice(2)) {
    const body = await new Promise((resolve, reject) => {
      https.get(u, res => { let b = ''; res.on('data', d => b += d); res.on('end', () => resolve(b)); }).on('error', reject);
    });
    process.stdout.write(body);
  }
})().catch(e => { console.error(e); process.exit(1); });
`)
		// Node's own roots stand for the system's: NODE_EXTRA_CA_CERTS adds ca.crt to them, as documented. The
		// stand-in root is not among Node's, so it is added the same way.
		caCrt, err := os.ReadFile(filepath.Join(ca, "ca.crt"))
		require.NoError(t, err)
		extra := writeFile(t, app, "extra.pem", string(caCrt)+string(root.PEM))
		// Node 20 ignores HTTP_PROXY; global-agent, preloaded through NODE_OPTIONS without touching the app or
		// its command line, reads it.
		cmd := exec.Command("node", "fetch.js", urls[0], urls[1])
		cmd.Dir = app
		cmd.Env = append(os.Environ(), "NODE_OPTIONS=-r global-agent/bootstrap", "GLOBAL_AGENT_ENVIRONMENT_VARIABLE_NAMESPACE=",
			"HTTPS_PROXY="+proxyURL, "HTTP_PROXY="+proxyURL, "NO_PROXY=", "NODE_EXTRA_CA_CERTS="+extra)
		want(t, run(t, cmd))
	})
	require.NoError(t, r.stop(t))
}

// needs skips a client test whose program this machine lacks; .ci/run installs them all.
func needs(t *testing.T, program string) {
	t.Helper()
	if _, err := exec.LookPath(program); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; .ci/run should have installed it", program)
		}
		t.Skipf("%s is not installed", program)
	}
}
