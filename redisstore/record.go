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
	plain, err := json.Marshal(record{Token: t.Value, Obtained: t.Obtained.UnixMilli(), Expiry: t.Expiry.UnixMilli(),
		Scope: t.Scope, Source: t.LifetimeSource})
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

func (s *Store) open(key, sealed string) (*tokensource.Token, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != recordVersion {
		return nil, fmt.Errorf("not a version %d record", recordVersion)
	}
	plain, err := s.aead.Open(nil, []byte(sealed[1:1+n]), []byte(sealed[1+n:]), []byte(key))
	if err != nil {
		return nil, errors.New("sealed under another key, or altered")
	}
	var r record
	if err := json.Unmarshal(plain, &r); err != nil || r.Token == "" {
		return nil, errors.New("no token in the record")
	}
	t := tokensource.NewToken(r.Token, time.UnixMilli(r.Obtained), time.UnixMilli(r.Expiry))
	t.Scope, t.LifetimeSource = r.Scope, r.Source
	return t, nil
}
