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

// Open connects to the store at rawURL (see CheckURL); password is used when the URL has none. Calls are
// bounded by their context, so a slow Redis costs a request at most the store's timeout.
func Open(rawURL, password string, o Options) (*Store, error) {
	client, err := newClient(rawURL, password)
	if err != nil {
		return nil, err
	}
	if o.Logger != nil {
		// go-redis logs through a process-wide logger: the first store's logger takes its lines, at debug.
		setClientLog.Do(func() { redis.SetLogger(clientLog{o.Logger}) })
	}
	o.Client = client
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

// CheckURL tells whether a store URL reads as go-redis reads it: redis:// or rediss:// (TLS, verified
// against the system roots, which honour SSL_CERT_FILE) for one server; with master_name= for Sentinel (the
// host and each addr= are sentinels); with addr= alone for a cluster. go-redis's other parameters
// (dial_timeout=, pool_size=, max_retries=, …) are kept. Its errors show no password.
func CheckURL(raw string) error {
	_, err := parseURL(raw)
	return err
}

// parsedURL is a store URL as go-redis's parser for its kind reads it; one of the three is set.
type parsedURL struct {
	simple   *redis.Options
	sentinel *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

func parseURL(raw string) (parsedURL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return parsedURL{}, fmt.Errorf("%q is not a redis:// or rediss:// URL", redactURL(raw))
	}
	var p parsedURL
	switch q := u.Query(); {
	case q.Has("master_name"):
		p.sentinel, err = redis.ParseFailoverURL(raw)
	case q.Has("addr"):
		p.cluster, err = redis.ParseClusterURL(raw)
	default:
		p.simple, err = redis.ParseURL(raw)
	}
	if err != nil {
		return parsedURL{}, hidePasswords(raw, err)
	}
	// go-redis reads these for Sentinel URLs but its failover client panics on the first two, and the third
	// would send the store's writes to read-only replicas.
	if o := p.sentinel; o != nil && (o.RouteByLatency || o.RouteRandomly || o.ReplicaOnly) {
		return parsedURL{}, fmt.Errorf("%q: route_by_latency, route_randomly and replica_only do not apply to a store, "+
			"which writes: leave them out, so the master is used", redactURL(raw))
	}
	return p, nil
}

// newClient makes the client of a store URL. Calls are bounded by their contexts; connections are made
// ahead of need (at least 2 kept idle, unless the URL says) because one made on a request's look-up would
// spend its 50 ms on the handshake; CLIENT SETINFO, one round trip more per connection, is skipped.
func newClient(raw, password string) (redis.UniversalClient, error) {
	p, err := parseURL(raw)
	if err != nil {
		return nil, err
	}
	switch {
	case p.sentinel != nil:
		o := p.sentinel
		tune(&o.Password, password, &o.ContextTimeoutEnabled, &o.DisableIdentity, &o.MinIdleConns)
		return redis.NewFailoverClient(o), nil
	case p.cluster != nil:
		o := p.cluster
		tune(&o.Password, password, &o.ContextTimeoutEnabled, &o.DisableIdentity, &o.MinIdleConns)
		return redis.NewClusterClient(o), nil
	}
	o := p.simple
	tune(&o.Password, password, &o.ContextTimeoutEnabled, &o.DisableIdentity, &o.MinIdleConns)
	return redis.NewClient(o), nil
}

// tune sets the options every kind of client shares (see newClient).
func tune(urlPassword *string, password string, contextTimeout, disableIdentity *bool, minIdleConns *int) {
	if *urlPassword == "" {
		*urlPassword = password
	}
	*contextTimeout, *disableIdentity = true, true
	if *minIdleConns == 0 {
		*minIdleConns = 2
	}
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
