package tokensource

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"
	"github.com/go-oauth2/oauth2/v4/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newOAuth2Server runs go-oauth2's authorization server (not ours) with one registered client.
func newOAuth2Server(t *testing.T, clientInfo server.ClientInfoHandler, secret string) (*httptest.Server, *server.Server) {
	manager := manage.NewDefaultManager()
	manager.MustTokenStorage(store.NewMemoryTokenStore())
	clients := store.NewClientStore()
	require.NoError(t, clients.Set("procu-buyer-4821", &models.Client{ID: "procu-buyer-4821", Secret: secret, Domain: "http://localhost"}))
	manager.MapClientStorage(clients)
	srv := server.NewDefaultServer(manager)
	srv.SetClientInfoHandler(clientInfo)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = srv.HandleTokenRequest(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts, srv
}

func TestAgainstGoOAuth2Server(t *testing.T) {
	tests := []struct {
		name   string
		info   server.ClientInfoHandler
		style  AuthStyle
		secret string
	}{
		// go-oauth2 does not form-decode Basic credentials (RFC 6749 §2.3.1 says to), so the Basic case
		// uses a secret whose form encoding is itself.
		{"basic-header", server.ClientBasicHandler, AuthBasicHeader, "s3cr3t-plain_secret.value~1"},
		{"body", server.ClientFormHandler, AuthBody, testSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, srv := newOAuth2Server(t, tt.info, tt.secret)
			cfg := Config{TokenURL: ts.URL + "/token", ClientID: "procu-buyer-4821", ClientSecret: tt.secret,
				Scope: "orders", AuthStyle: tt.style}
			f, err := NewFetcher(cfg, Options{})
			require.NoError(t, err)
			tok, err := f.Fetch(context.Background())
			require.NoError(t, err)
			assert.Equal(t, "orders", tok.Scope)
			assert.Equal(t, manage.DefaultClientTokenCfg.AccessTokenExp, tok.Lifetime())

			// The server recognises what it issued.
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("Authorization", "Bearer "+tok.Value)
			info, err := srv.ValidationBearerToken(req)
			require.NoError(t, err)
			assert.Equal(t, "procu-buyer-4821", info.GetClientID())

			cfg.ClientSecret = "wrong"
			f, err = NewFetcher(cfg, Options{})
			require.NoError(t, err)
			_, err = f.Fetch(context.Background())
			e, ok := AsError(err)
			require.True(t, ok, "want *Error, got %v", err)
			assert.Equal(t, "invalid_client", e.Code)
			assert.Equal(t, http.StatusUnauthorized, e.StatusCode)
			assert.Contains(t, e.Hint(), "authStyle")
		})
	}
}
