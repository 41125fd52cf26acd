package tokensource

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
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

// ParsePrivateKey reads an RSA or EC P-256 private key from PEM (PKCS #8, PKCS #1 or SEC 1).
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("holds no PEM block")
	}
	var key any
	var err error
	if key, err = x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		if key, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
			if key, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
				return nil, errors.New("is not a PKCS #8, PKCS #1 or SEC 1 private key")
			}
		}
	}
	signer, ok := key.(crypto.Signer)
	if !ok || signingMethod(signer) == "" {
		return nil, errors.New("the key must be RSA or EC P-256")
	}
	return signer, nil
}
