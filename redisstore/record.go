package redisstore

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tokenproxy/tokenproxy/tokensource"
)

// recordVersion is the first byte of every value; a record of another version is a miss.
const recordVersion = 1

// derive gives each use of the secret key a key of its own.
func derive(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// record is what Redis holds for a token: enough for every replica to compute the same refresh point.
type record struct {
	Token    string `json:"t"`
	Obtained int64  `json:"o"` // unix milliseconds
	Expiry   int64  `json:"e"`
	Scope    string `json:"s,omitempty"`
	Source   string `json:"l,omitempty"`
}

// seal encrypts t's record, bound to key so a record copied to another key does not open.
func (s *Store) seal(key string, t *tokensource.Token) (string, error) {
	return s.sealJSON(key, record{Token: t.Value, Obtained: t.Obtained.UnixMilli(), Expiry: t.Expiry.UnixMilli(),
		Scope: t.Scope, Source: t.LifetimeSource})
}

func (s *Store) open(key, sealed string) (*tokensource.Token, error) {
	var r record
	if err := s.openJSON(key, sealed, &r); err != nil {
		return nil, err
	}
	if r.Token == "" {
		return nil, errors.New("no token in the record")
	}
	t := tokensource.NewToken(r.Token, time.UnixMilli(r.Obtained), time.UnixMilli(r.Expiry))
	t.Scope, t.LifetimeSource = r.Scope, r.Source
	return t, nil
}

// sealJSON encrypts v's JSON with a version byte and a random nonce, with key as additional data.
func (s *Store) sealJSON(key string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = recordVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return "", err
	}
	return string(s.aead.Seal(out, out[1:], plain, []byte(key))), nil
}

// openJSON decrypts what sealJSON sealed at key into v.
func (s *Store) openJSON(key, sealed string, v any) error {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != recordVersion {
		return fmt.Errorf("not a version %d record", recordVersion)
	}
	plain, err := s.aead.Open(nil, []byte(sealed[1:1+n]), []byte(sealed[1+n:]), []byte(key))
	if err != nil {
		return errors.New("sealed under another key, or altered")
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return errors.New("not a record of this kind")
	}
	return nil
}
