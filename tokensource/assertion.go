package tokensource

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// AssertionLifetime is how long a client assertion is valid; RFC 7523 wants it short.
const AssertionLifetime = 2 * time.Minute

// clientAssertion signs the RFC 7523 §2.2 client authentication JWT: iss = sub = client id, aud = token
// endpoint, a unique jti, and a short exp.
func clientAssertion(c Config, style AuthStyle, now time.Time) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("tokensource: client assertion: %w", err)
	}
	claims := jwt.RegisteredClaims{
		Issuer:    c.ClientID,
		Subject:   c.ClientID,
		Audience:  jwt.ClaimStrings{c.TokenURL},
		ID:        hex.EncodeToString(jti),
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(AssertionLifetime)),
	}
	var method jwt.SigningMethod
	var key any
	switch style {
	case AuthClientSecretJWT:
		method, key = jwt.SigningMethodHS256, []byte(c.ClientSecret)
	default:
		method, key = jwt.GetSigningMethod(signingMethod(c.ClientKey)), c.ClientKey
		if method == nil {
			return "", fmt.Errorf("tokensource: the client key must be RSA or EC P-256")
		}
	}
	tok := jwt.NewWithClaims(method, claims)
	if c.ClientKeyID != "" && style == AuthPrivateKeyJWT {
		tok.Header["kid"] = c.ClientKeyID
	}
	signed, err := tok.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("tokensource: signing the client assertion: %w", err)
	}
	return signed, nil
}
