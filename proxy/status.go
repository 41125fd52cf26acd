package proxy

import (
	"context"
	"time"

	"github.com/tokenproxy/tokenproxy/tokensource"
)

// RouteStatus is a route as the admin endpoints show it: no secret, no token, no query string.
type RouteStatus struct {
	Name      string      `json:"name"`
	Hosts     []string    `json:"hosts"`
	TokenURL  string      `json:"tokenUrl"`
	AuthStyle string      `json:"authStyle"`
	Detected  string      `json:"detectedAuthStyle,omitempty"` // what authStyle auto settled on
	Cache     bool        `json:"cache"`
	Token     TokenStatus `json:"token"`
}

// TokenStatus is the state of a route's token.
type TokenStatus struct {
	// Fingerprint names the cached token (8 hex digits of its SHA-256); empty when none is cached.
	Fingerprint string `json:"fingerprint,omitempty"`
	// ExpiresIn is how long until the cached token expires; nil when none is cached.
	ExpiresInSeconds *float64 `json:"expiresInSeconds,omitempty"`
	// LastError is the token endpoint's last failure, until a fetch succeeds.
	LastError string `json:"lastError,omitempty"`
	// BackedOffUntil is when the token endpoint will be asked again after failures; nil when it is not
	// being backed off.
	BackedOffUntil *time.Time `json:"backedOffUntil,omitempty"`
	// RefusalsBackedOffUntil is when a supplier's refusal may fetch a new token again; nil when it may now.
	RefusalsBackedOffUntil *time.Time `json:"refusalsBackedOffUntil,omitempty"`
}

// StoreStatus is where tokens are kept, as the admin endpoints show it.
type StoreStatus struct {
	Kind    string `json:"kind"`            // memory (this process) or redis (shared by the fleet)
	Where   string `json:"where,omitempty"` // the store's address, without credentials
	Healthy bool   `json:"healthy"`         // the last call to the store succeeded
}

// sharedStore is a store other replicas see, which can tell where it is and whether it answers.
type sharedStore interface {
	Where() string
	Healthy() bool
}

// StoreStatus describes where tokens are kept.
func (s *Server) StoreStatus() StoreStatus {
	if st, ok := s.opts.TokenStore.(sharedStore); ok {
		return StoreStatus{Kind: "redis", Where: st.Where(), Healthy: st.Healthy()}
	}
	return StoreStatus{Kind: "memory", Healthy: true}
}

// Status describes the routes in service and their tokens, as this replica knows them.
func (s *Server) Status() []RouteStatus { return s.status(context.Background(), false) }

// FleetStatus is Status with what the shared store adds: a refusal hold another replica put on a route
// shows in refusalsBackedOffUntil. Once ctx is done the store is asked no more (each call has a timeout of
// its own, which ctx's deadline does not shorten).
func (s *Server) FleetStatus(ctx context.Context) []RouteStatus { return s.status(ctx, true) }

// status describes the routes; with fleet it asks the shared store for the fleet's refusal holds.
func (s *Server) status(ctx context.Context, fleet bool) []RouteStatus {
	snap := s.snap.Load()
	now := time.Now()
	if s.opts.Clock != nil {
		now = s.opts.Clock.Now()
	}
	out := make([]RouteStatus, 0, len(snap.cfg.Routes))
	for _, r := range snap.cfg.Routes {
		f := snap.fetchers[r]
		rs := RouteStatus{
			Name:      r.Name,
			TokenURL:  tokensource.DisplayURL(f.Config().TokenURL),
			AuthStyle: string(f.Config().AuthStyle),
			Detected:  string(f.Detected()),
			Cache:     r.Cache,
		}
		for _, h := range r.Hosts {
			rs.Hosts = append(rs.Hosts, h.String())
		}
		st := s.cache.State(f)
		if t := st.Token; t != nil && r.Cache {
			rs.Token.Fingerprint = t.Fingerprint()
			left := t.Expiry.Sub(now).Seconds()
			rs.Token.ExpiresInSeconds = &left
		}
		if st.LastError != nil {
			rs.Token.LastError = st.LastError.Error()
		}
		if !st.BackoffUntil.IsZero() {
			until := st.BackoffUntil.UTC()
			rs.Token.BackedOffUntil = &until
		}
		if fleet && ctx.Err() == nil {
			if held := s.cache.FleetRefusalsHeld(ctx, f); held.After(now) && held.After(st.RefusalsUntil) {
				st.RefusalsUntil = held
			}
		}
		if !st.RefusalsUntil.IsZero() {
			until := st.RefusalsUntil.UTC()
			rs.Token.RefusalsBackedOffUntil = &until
		}
		out = append(out, rs)
	}
	return out
}

// CertificatesCached is the number of intercepted hosts with a leaf certificate ready.
func (s *Server) CertificatesCached() int {
	if l := s.snap.Load().leaves; l != nil {
		return l.Len()
	}
	return 0
}

// Ready reports whether the proxy serves: a configuration is loaded, it listens, it is not draining, and
// requests to upstreams complete (none has waited for its answer longer than the upstream timeouts allow).
func (s *Server) Ready() bool {
	return s.listening.Load() && !s.draining.Load() && !s.upstreamsStalled()
}
