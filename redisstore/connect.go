package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Open connects to the store at rawURL (see ParseURL); password is used when the URL has none. Calls are
// bounded by their context, so a slow Redis costs a request at most the store's timeout.
func Open(rawURL, password string, o Options) (*Store, error) {
	ro, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if ro.Password == "" {
		ro.Password = password
	}
	ro.ContextTimeoutEnabled = true
	// Connections are made ahead of need and kept: a connection made on a request's look-up would spend
	// its 50 ms on the handshake. CLIENT SETINFO is one round trip more per connection, for nothing.
	ro.MinIdleConns, ro.DisableIdentity = 2, true
	if o.Logger != nil {
		// go-redis logs through a process-wide logger: the first store's logger takes its lines, at debug.
		setClientLog.Do(func() { redis.SetLogger(clientLog{o.Logger}) })
	}
	o.Client = redis.NewUniversalClient(ro)
	s, err := New(o)
	if err != nil {
		_ = o.Client.Close()
		return nil, err
	}
	s.where, s.owned = redactURL(rawURL), true
	// A first call with time to spare opens the pool; a Redis that does not answer now only means the
	// replica starts on its own memory, as whenever Redis fails.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.result("ping", s.client.Ping(ctx).Err())
	return s, nil
}

var setClientLog sync.Once

// clientLog puts go-redis's own messages (failed dials, pool events) in tokenproxy's log at debug: the
// store logs each change between working and failing once, at warn.
type clientLog struct{ log *slog.Logger }

func (c clientLog) Printf(ctx context.Context, format string, v ...any) {
	c.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

// Close closes the connection Open made.
func (s *Store) Close() error {
	if s.owned {
		return s.client.Close()
	}
	return nil
}

// KeyPrefix starts every key this store writes.
func (s *Store) KeyPrefix() string { return s.prefix }

// Where is the store's URL without its password.
func (s *Store) Where() string { return s.where }

// ParseURL reads a store URL as go-redis does: redis:// or rediss:// (TLS, verified against the system
// roots, which honour SSL_CERT_FILE) for one server; with master_name= for Sentinel (the host and each
// addr= are sentinels); with addr= alone for a cluster.
func ParseURL(raw string) (*redis.UniversalOptions, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return nil, fmt.Errorf("%q is not a redis:// or rediss:// URL", redactURL(raw))
	}
	q := u.Query()
	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(raw)
		if err != nil {
			return nil, hidePasswords(raw, err)
		}
		return &redis.UniversalOptions{MasterName: o.MasterName, Addrs: o.SentinelAddrs, Username: o.Username,
			Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig, SentinelUsername: o.SentinelUsername,
			SentinelPassword: o.SentinelPassword}, nil
	case q.Has("addr"):
		o, err := redis.ParseClusterURL(raw)
		if err != nil {
			return nil, hidePasswords(raw, err)
		}
		return &redis.UniversalOptions{Addrs: o.Addrs, Username: o.Username, Password: o.Password,
			TLSConfig: o.TLSConfig, IsClusterMode: true}, nil
	}
	o, err := redis.ParseURL(raw)
	if err != nil {
		return nil, hidePasswords(raw, err)
	}
	return &redis.UniversalOptions{Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password, DB: o.DB,
		TLSConfig: o.TLSConfig}, nil
}

// hidePasswords is go-redis's complaint about raw, a URL that parses, with its passwords replaced.
func hidePasswords(raw string, err error) error {
	msg := err.Error()
	u, _ := url.Parse(raw)
	var secrets []string
	if p, has := u.User.Password(); has {
		secrets = append(secrets, p, url.QueryEscape(p))
	}
	for _, k := range []string{"password"} {
		if p := u.Query().Get(k); p != "" {
			secrets = append(secrets, p, url.QueryEscape(p))
		}
	}
	for _, p := range secrets {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	return errors.New(msg)
}

// redactURL is a store URL fit for logs and /routes: the password, in the user info or in a password=
// parameter (Sentinel), replaced; a URL that does not parse, not shown at all.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(a URL that does not parse)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	for _, k := range []string{"password"} {
		if q.Has(k) {
			q.Set(k, "xxxxx")
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}
