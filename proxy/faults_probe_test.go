package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The black-box probe's findings, each as a fault: the attack fails, and afterwards the proxy still serves
// a route's request with a token, leaves no goroutine behind and logged no secret (withFault). Each
// finding also has a test of its own that goes further (named beside it); docs/security.md lists them.
// probeRoutes is faultRoutes with a token endpoint that works: the faults here are the app's.
var probeRoutes = strings.Replace(faultRoutes, "TOKEN_URL_UNDER_TEST", "{{TOKEN_URL}}", 1)

func TestFaultsTheProbeFound(t *testing.T) {
	t.Run("a look-alike host (İ) gets no token", func(t *testing.T) { // TestALookAlikeHostIsAnotherHost
		withFault(t, probeRoutes, harnessOptions{}, func(t *testing.T, h *harness) {
			attacker := newUpstream(t, nil, false, nil)
			h.route("xn--faultiy-cie.test:80", attacker) // "faultİy.test"
			resp, _ := h.rawRequest(t, "GET http://fault\u0130y.test/x HTTP/1.1\r\nHost: faulty.test\r\n\r\n")
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Empty(t, attacker.last(t).Header.Get("Authorization"))
		})
	})
	t.Run("HTTP/2 :authority fronting is 421", func(t *testing.T) { // TestHTTP2AuthorityMustNameTheHostOfTheRequest
		withFault(t, probeRoutes, harnessOptions{}, func(t *testing.T, h *harness) {
			up := newUpstream(t, h.upCert, false, nil)
			h.route("faulty.test:443", up)
			h.route("evil.example:443", up)
			c, _ := h.rawConnect("faulty.test:443")
			h2, err := startRawH2(c, "faulty.test", h.caPool)
			require.NoError(t, err)
			defer h2.Close()
			ans, err := h2.do([2]string{":method", "GET"}, [2]string{":scheme", "https"},
				[2]string{":authority", "evil.example"}, [2]string{":path", "https://faulty.test/x"})
			require.NoError(t, err)
			assert.Equal(t, http.StatusMisdirectedRequest, ans.status)
			assert.Empty(t, up.requests())
		})
	})
	t.Run("TRACE to a route is 405", func(t *testing.T) { // TestTraceIsNotForwardedToARoute
		withFault(t, probeRoutes, harnessOptions{}, func(t *testing.T, h *harness) {
			up := newUpstream(t, nil, false, nil)
			h.route("faulty.test:80", up)
			resp, _ := h.rawRequest(t, "TRACE http://faulty.test/ HTTP/1.1\r\nHost: faulty.test\r\n\r\n")
			assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
			assert.Empty(t, up.requests())
		})
	})
	t.Run("a request body that stops is 408 and the connection ends", func(t *testing.T) { // TestAStalledRequestBodyEndsTheRequest
		withFault(t, probeRoutes, harnessOptions{requestBodyTimeout: 300 * time.Millisecond}, func(t *testing.T, h *harness) {
			up := newUpstream(t, nil, false, nil)
			h.route("faulty.test:80", up)
			c, err := net.Dial("tcp", h.proxyURL.Host)
			require.NoError(t, err)
			defer c.Close()
			_, err = io.WriteString(c, "POST http://faulty.test/ HTTP/1.1\r\nHost: faulty.test\r\nContent-Length: 100\r\n\r\nabc")
			require.NoError(t, err)
			resp := answerThenEOF(t, c, bufio.NewReader(c))
			assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
			assert.Empty(t, up.requests())
		})
	})
	t.Run("an unknown gateway client's half body is not waited for", func(t *testing.T) { // TestAGatewayRefusesUnknownAppsWithoutReadingTheirBodies
		clients := "clients:\n  - name: pods\n    cidrs: [127.0.0.1/32]\nroutes:"
		withFault(t, strings.Replace(probeRoutes, "routes:", clients, 1), harnessOptions{}, func(t *testing.T, h *harness) {
			c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).Dial("tcp", h.proxyURL.Host)
			require.NoError(t, err)
			defer c.Close()
			_, err = io.WriteString(c, "POST http://faulty.test/ HTTP/1.1\r\nHost: faulty.test\r\nContent-Length: 100\r\n\r\nabc")
			require.NoError(t, err)
			resp := answerThenEOF(t, c, bufio.NewReader(c)) // well before the 30 s body timeout
			assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		})
	})
	t.Run("an HTTP/2 app that reads nothing loses its streams, not the proxy", func(t *testing.T) { // TestStalledStreamsHoldABoundedAmount, TestAnAppThatReadsNothingIsCut
		withFault(t, stallRoutes, harnessOptions{clientIdleTimeout: 300 * time.Millisecond, quiet: true}, func(t *testing.T, h *harness) {
			endless := newEndlessUpstream(t, h.upCert)
			h.mapHost("supplier.test:443", endless.addr())
			a := h.stallingApp("supplier.test:443")
			for i := range 20 {
				require.NoError(t, a.get("supplier.test", fmt.Sprintf("/%d", i)))
			}
			waitUntil(t, "the app's streams reset", func() bool { return a.reset.Load() == 20 })
			waitUntil(t, "the upstream's streams reset", func() bool { return endless.resets.Load() == 20 })
		})
	})
}
