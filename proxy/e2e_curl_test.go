package proxy

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// curl is a client we did not write; .ci/run installs it.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("curl")
	require.NoError(t, err, "curl is needed for this test (apt-get install -y curl)")
	out, err := exec.Command(path, append([]string{"-sS", "--max-time", "20", "-D", "-"}, args...)...).CombinedOutput()
	require.NoError(t, err, "curl: %s", out)
	return string(out)
}

func TestCurlThroughTheProxy(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	plain := newUpstream(t, nil, false, nil)
	h.route("supplier.test:80", plain)
	tlsUp := newUpstream(t, h.upCert, false, nil)
	h.route("supplier.test:443", tlsUp)
	proxy := "http://" + h.proxyURL.Host

	out := curl(t, "-x", proxy, "-H", "Authorization: Basic YXBwOmFwcA==", "http://supplier.test/curl/plain?x=1")
	assert.Contains(t, out, "hello from upstream")
	assert.Equal(t, "Bearer "+testTokenPrefix+"1", plain.last(t).Header.Get("Authorization"))
	assert.Equal(t, "/curl/plain?x=1", plain.last(t).RequestURI)

	out = curl(t, "-x", proxy, "--cacert", h.caFile, "-d", "posted=1", "https://supplier.test/curl/tls")
	assert.Contains(t, out, "hello from upstream")
	got := tlsUp.last(t)
	assert.Equal(t, http.MethodPost, got.Method)
	assert.Equal(t, "Bearer "+testTokenPrefix+"1", got.Header.Get("Authorization"))
	assert.Equal(t, sha([]byte("posted=1")), got.BodySHA)

	failing := "fail"
	h.tokens.fail.Store(&failing)
	fresh := newUpstream(t, nil, false, nil)
	h.route("fresh.test:80", fresh)
	out = curl(t, "-x", proxy, "http://fresh.test/")
	assert.True(t, strings.HasPrefix(out, "HTTP/1.1 502"), out)
	assert.Contains(t, strings.ToLower(out), "x-tokenproxy-error: token")
}
