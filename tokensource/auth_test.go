package tokensource

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/internal/testkit"
)

// assertionServer verifies a client_assertion with verifyKey and answers a token when it holds.
func assertionServer(t *testing.T, alg string, verifyKey any, seen *[]jwt.MapClaims, kids *[]string) *tokenServer {
	return withHandler(newTokenServer(t, nil), func(r *http.Request, w http.ResponseWriter) {
		assert.NoError(t, r.ParseForm())
		assert.Equal(t, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", r.PostForm.Get("client_assertion_type"))
		assert.Equal(t, "client-7", r.PostForm.Get("client_id"))
		assert.Empty(t, r.PostForm.Get("client_secret"))
		_, _, hasBasic := r.BasicAuth()
		assert.False(t, hasBasic)
		claims := jwt.MapClaims{}
		tok, err := jwt.ParseWithClaims(r.PostForm.Get("client_assertion"), claims, func(tok *jwt.Token) (any, error) {
			return verifyKey, nil
		}, jwt.WithValidMethods([]string{alg}), jwt.WithIssuedAt())
		if err != nil || !tok.Valid {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"bad assertion"}`)
			return
		}
		*seen = append(*seen, claims)
		kid, _ := tok.Header["kid"].(string)
		*kids = append(*kids, kid)
		_, _ = io.WriteString(w, `{"access_token":"signed-ok","expires_in":60}`)
	})
}

// withHandler replaces the server's handler with one that sees the request.
func withHandler(ts *tokenServer, h func(r *http.Request, w http.ResponseWriter)) *tokenServer {
	ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.Count.Add(1)
		h(r, w)
	})
	return ts
}

func TestClientAssertionStyles(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tests := []struct {
		name   string
		style  AuthStyle
		alg    string
		key    crypto.Signer
		verify any
		kid    string
	}{
		{"private-key-jwt RSA", AuthPrivateKeyJWT, "RS256", rsaKey, &rsaKey.PublicKey, "key-2026"},
		{"private-key-jwt EC", AuthPrivateKeyJWT, "ES256", ecKey, &ecKey.PublicKey, ""},
		{"client-secret-jwt", AuthClientSecretJWT, "HS256", nil, []byte(testSecret), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen []jwt.MapClaims
			var kids []string
			ts := assertionServer(t, tt.alg, tt.verify, &seen, &kids)
			cfg := Config{TokenURL: ts.URL + "/token", ClientID: "client-7", AuthStyle: tt.style, ClientKey: tt.key, ClientKeyID: tt.kid}
			if tt.style == AuthClientSecretJWT {
				cfg.ClientSecret = testSecret
			}
			f, err := NewFetcher(cfg, Options{})
			require.NoError(t, err)
			for i := 0; i < 2; i++ {
				tok, err := f.Fetch(context.Background())
				require.NoError(t, err)
				assert.Equal(t, "signed-ok", tok.Value)
			}
			require.Len(t, seen, 2, "the server verified both signatures")
			for _, c := range seen {
				assert.Equal(t, "client-7", c["iss"])
				assert.Equal(t, "client-7", c["sub"])
				aud, _ := c.GetAudience()
				assert.Equal(t, jwt.ClaimStrings{ts.URL + "/token"}, aud)
				iat, _ := c.GetIssuedAt()
				exp, _ := c.GetExpirationTime()
				assert.LessOrEqual(t, exp.Sub(iat.Time), 5*time.Minute)
				assert.Positive(t, exp.Sub(iat.Time))
			}
			assert.NotEqual(t, seen[0]["jti"], seen[1]["jti"], "every assertion has its own jti")
			assert.Equal(t, []string{tt.kid, tt.kid}, kids)

			// A key the server does not know is refused.
			other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			require.NoError(t, err)
			cfg.ClientKey, cfg.ClientSecret = other, "not-the-secret"
			if tt.style == AuthPrivateKeyJWT && tt.alg == "RS256" {
				otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
				require.NoError(t, err)
				cfg.ClientKey = otherRSA
			}
			f, err = NewFetcher(cfg, Options{})
			require.NoError(t, err)
			_, err = f.Fetch(context.Background())
			e, ok := AsError(err)
			require.True(t, ok, "want *Error, got %v", err)
			assert.Equal(t, "invalid_client", e.Code)
		})
	}
}

func TestParsePrivateKey(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(ecKey)
	require.NoError(t, err)
	key, err := ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	require.NoError(t, err)
	assert.True(t, ecKey.Equal(key))

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	key, err = ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}))
	require.NoError(t, err)
	assert.True(t, rsaKey.Equal(key), "PKCS #1")
	sec1DER, err := x509.MarshalECPrivateKey(ecKey)
	require.NoError(t, err)
	key, err = ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1DER}))
	require.NoError(t, err)
	assert.True(t, ecKey.Equal(key), "SEC 1")

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	der, err = x509.MarshalECPrivateKey(p384)
	require.NoError(t, err)
	_, err = ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	assert.ErrorContains(t, err, "must be RSA or EC P-256")
	_, err = ParsePrivateKey([]byte("not pem"))
	assert.ErrorContains(t, err, "holds no PEM block")
}

func TestTLSClientAuth(t *testing.T) {
	client, server := testkit.SelfSigned(t, "client-7"), testkit.SelfSigned(t, "token server")
	clientCert, clientLeaf := *client.TLS, client.Leaf
	serverCert, serverLeaf := *server.TLS, server.Leaf
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(clientLeaf)
	var gotForm url.Values
	var gotCN string
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.NoError(t, r.ParseForm())
		gotForm = r.PostForm
		gotCN = r.TLS.PeerCertificates[0].Subject.CommonName
		_, _ = io.WriteString(w, `{"access_token":"mtls-ok"}`)
	}))
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
	ts.StartTLS()
	defer ts.Close()
	roots := x509.NewCertPool()
	roots.AddCert(serverLeaf)

	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "client-7", AuthStyle: AuthTLSClient, ClientCert: &clientCert}, Options{RootCAs: roots})
	require.NoError(t, err)
	tok, err := f.Fetch(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "mtls-ok", tok.Value)
	assert.Equal(t, "client-7", gotCN, "the token endpoint verified the client certificate")
	assert.Equal(t, "client-7", gotForm.Get("client_id"))
	assert.Empty(t, gotForm.Get("client_secret"))

	// Without the certificate the handshake fails: the check is real.
	f, err = NewFetcher(Config{TokenURL: ts.URL, ClientID: "client-7", ClientSecret: "x"}, Options{RootCAs: roots})
	require.NoError(t, err)
	_, err = f.Fetch(context.Background())
	e, ok := AsError(err)
	require.True(t, ok)
	assert.Equal(t, KindNetwork, e.Kind)
}

func TestAuthStyleAuto(t *testing.T) {
	tests := []struct {
		name         string
		accepts      AuthStyle // the style the endpoint takes; "" for none
		status       int       // answer to any other style
		body         string
		wantRequests []int64 // token requests seen after each of two fetches
		wantDetected AuthStyle
		wantOK       bool
	}{
		{"basic works", AuthBasicHeader, 401, `{"error":"invalid_client"}`, []int64{1, 2}, AuthBasicHeader, true},
		{"body after invalid_client", AuthBody, 401, `{"error":"invalid_client"}`, []int64{2, 3}, AuthBody, true},
		{"body after bare 400", AuthBody, 400, ``, []int64{2, 3}, AuthBody, true},
		{"5xx never flips", "", 503, `{"error":"temporarily_unavailable"}`, []int64{1, 2}, "", false},
		{"other OAuth errors never flip", AuthBody, 400, `{"error":"invalid_scope"}`, []int64{1, 2}, "", false},
		{"an unregistered code never flips", AuthBody, 401, `{"error":"unauthorized"}`, []int64{1, 2}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := withHandler(newTokenServer(t, nil), func(r *http.Request, w http.ResponseWriter) {
				assert.NoError(t, r.ParseForm())
				_, _, basic := r.BasicAuth()
				style := AuthBody
				if basic {
					style = AuthBasicHeader
				}
				if style == tt.accepts && (basic || r.PostForm.Get("client_secret") == testSecret) {
					_, _ = io.WriteString(w, `{"access_token":"auto-ok"}`)
					return
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			var logs bytes.Buffer
			f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: testSecret, AuthStyle: AuthAuto},
				Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			require.NoError(t, err)
			for i, want := range tt.wantRequests {
				_, err := f.Fetch(context.Background())
				assert.Equal(t, tt.wantOK, err == nil, "fetch %d: %v", i, err)
				assert.Equal(t, want, ts.Count.Load(), "token requests after fetch %d", i)
			}
			assert.Equal(t, tt.wantDetected, f.Detected())
			if tt.wantDetected != "" {
				assert.Equal(t, 1, strings.Count(logs.String(), "authStyle auto"), "the detected style is logged once")
			}
			assert.NotContains(t, logs.String(), testSecret)
		})
	}
}

func TestAuthStyleAutoTimeoutNeverFlips(t *testing.T) {
	ts := withHandler(newTokenServer(t, nil), func(r *http.Request, w http.ResponseWriter) {
		_, _ = io.Copy(io.Discard, r.Body) // net/http notices the client leaving only once the body is read
		<-r.Context().Done()               // never answers in time
	})
	f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: testSecret, AuthStyle: AuthAuto},
		Options{Timeout: 100 * time.Millisecond})
	require.NoError(t, err)
	_, err = f.Fetch(context.Background())
	e, ok := AsError(err)
	require.True(t, ok, "want *Error, got %v", err)
	assert.True(t, e.Timeout)
	assert.EqualValues(t, 1, ts.Count.Load(), "a timeout is not a reason to ask again with body")
	assert.Equal(t, AuthStyle(""), f.Detected())
}

func TestRetryAfterForms(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	assert.Equal(t, 120*time.Second, retryAfter("120", now))
	assert.Equal(t, 90*time.Second, retryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now))
	assert.Zero(t, retryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now), "a date in the past")
	assert.Zero(t, retryAfter("soon", now))
	assert.Zero(t, retryAfter("", now))
}

func TestParamsAndTokenHeaders(t *testing.T) {
	for _, style := range []RequestStyle{RequestForm, RequestJSON} {
		t.Run(string(style), func(t *testing.T) {
			ts := newTokenServer(t, jsonAnswer(map[string]any{"access_token": "p"}))
			f, err := NewFetcher(Config{TokenURL: ts.URL, ClientID: "c", ClientSecret: "s", RequestStyle: style,
				Params:       map[string]string{"audience": "https://api.supplier.example", "resource": "orders"},
				TokenHeaders: map[string]string{"X-Api-Key": "gateway-key"}}, Options{})
			require.NoError(t, err)
			_, err = f.Fetch(context.Background())
			require.NoError(t, err)
			got := ts.Last(t)
			assert.Equal(t, "gateway-key", got.Header.Get("X-Api-Key"))
			fields := map[string]string{}
			for k := range got.Form {
				fields[k] = got.Form.Get(k)
			}
			assert.Equal(t, map[string]string{"grant_type": "client_credentials",
				"audience": "https://api.supplier.example", "resource": "orders"}, fields)
		})
	}
}
