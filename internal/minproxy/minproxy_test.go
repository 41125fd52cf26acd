package minproxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The bare proxy sends the request with its fixed Authorization in place of the app's and without
// Proxy-Connection, and copies the answer's status, headers and body.
func TestBareSetsAuthorizationAndCopiesTheAnswer(t *testing.T) {
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Header().Set("X-Answer", "yes")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "body")
	}))
	defer up.Close()
	bare := httptest.NewServer(Bare(4, "Bearer fixed"))
	defer bare.Close()
	proxyURL, err := url.Parse(bare.URL)
	require.NoError(t, err)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}

	req, err := http.NewRequest(http.MethodGet, up.URL+"/x", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer the-apps")
	req.Header.Set("Proxy-Connection", "keep-alive")
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)

	assert.Equal(t, http.StatusTeapot, resp.StatusCode)
	assert.Equal(t, "yes", resp.Header.Get("X-Answer"))
	assert.Equal(t, "body", string(body))
	assert.Equal(t, []string{"Bearer fixed"}, got["Authorization"])
	assert.NotContains(t, got, "Proxy-Connection")
}
