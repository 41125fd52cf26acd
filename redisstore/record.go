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

// holdRecord is what Redis holds for the fleet's refusal hold: when it began, so that a reader can bound
// it by the longest refusal backoff whatever its end says, and when it ends.
type holdRecord struct {
	Since int64 `json:"f"` // unix milliseconds
	Until int64 `json:"u"`
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

// sealHold encrypts a refusal hold from since to until, bound to key as token records are.
func (s *Store) sealHold(key string, since, until time.Time) (string, error) {
	return s.sealJSON(key, holdRecord{Since: since.UnixMilli(), Until: until.UnixMilli()})
}

// openHold returns until when the hold sealed at key holds refusals back, as seen at now: never longer than
// the longest refusal backoff after it began, nor after now; zero once it is over. A hold that begins more
// than that backoff after now is an error: no replica of the fleet can have begun it yet.
func (s *Store) openHold(key, sealed string, now time.Time) (time.Time, error) {
	var h holdRecord
	if err := s.openJSON(key, sealed, &h); err != nil {
		return time.Time{}, err
	}
	since, until := time.UnixMilli(h.Since), time.UnixMilli(h.Until)
	if since.After(now.Add(tokensource.RefusalBackoffMax)) {
		return time.Time{}, fmt.Errorf("the hold begins more than %s from now (a clock ahead of this one)", tokensource.RefusalBackoffMax)
	}
	until = minTime(until, since.Add(tokensource.RefusalBackoffMax), now.Add(tokensource.RefusalBackoffMax))
	if !now.Before(until) {
		return time.Time{}, nil
	}
	return until, nil
}

func minTime(first time.Time, rest ...time.Time) time.Time {
	for _, t := range rest {
		if t.Before(first) {
			first = t
		}
	}
	return first
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
