package proxy

import (
	"fmt"

	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/mitm"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// maxLeaves bounds the leaf certificates kept per CA.
const maxLeaves = 1024

// snapshot is one configuration in service: its routes, their token fetchers and the leaf certificates of
// its CA. It is never changed; a reload swaps in a new one, and a request keeps the one it started with.
type snapshot struct {
	cfg      *config.Config
	fetchers map[*config.Route]*tokensource.Fetcher
	leaves   *mitm.Leaves // nil without a mitm section
	clients  []*admitted  // cfg's clients as admission compares them
}

// newSnapshot builds the snapshot of a resolved configuration. Whatever did not change since prev is taken
// over: a route's fetcher when its token settings are the same (it remembers what authStyle auto found),
// and the leaf certificates when the CA is the same.
func (s *Server) newSnapshot(cfg *config.Config, prev *snapshot) (*snapshot, error) {
	snap := &snapshot{cfg: cfg, fetchers: make(map[*config.Route]*tokensource.Fetcher, len(cfg.Routes)),
		clients: admittedClients(cfg.Clients)}
	for _, r := range cfg.Routes {
		if f := prev.fetcherLike(r); f != nil {
			snap.fetchers[r] = f
			continue
		}
		if r.Token.TokenURL == "" && r.Issuer != "" {
			return nil, fmt.Errorf("proxy: route %q: issuer %s is not resolved (config.Resolve)", r.Name, r.Issuer)
		}
		f, err := tokensource.NewFetcher(r.Token, tokensource.Options{
			Route: r.Name, RootCAs: s.opts.TokenRootCAs, Clock: s.opts.Clock, Logger: s.log, Timeout: s.opts.TokenTimeout,
		})
		if err != nil {
			return nil, fmt.Errorf("proxy: route %q: %w", r.Name, err)
		}
		snap.fetchers[r] = f
	}
	if cfg.MITM != nil {
		if prev != nil && prev.leaves != nil && mitm.SameCA(prev.leaves.CA(), cfg.MITM.CA) {
			snap.leaves = prev.leaves
		} else {
			snap.leaves = mitm.NewLeaves(cfg.MITM.CA, maxLeaves)
		}
	}
	return snap, nil
}

// fetcherLike returns prev's fetcher of a route with r's name and token settings, or nil.
func (prev *snapshot) fetcherLike(r *config.Route) *tokensource.Fetcher {
	if prev == nil {
		return nil
	}
	old := prev.cfg.Route(r.Name)
	if old == nil {
		return nil
	}
	f := prev.fetchers[old]
	if f == nil || !f.Serves(r.Token) {
		return nil
	}
	return f
}

// fetcherList is every fetcher of the snapshot: the credentials it keeps in service.
func (snap *snapshot) fetcherList() []*tokensource.Fetcher {
	list := make([]*tokensource.Fetcher, 0, len(snap.fetchers))
	for _, f := range snap.fetchers {
		list = append(list, f)
	}
	return list
}

// routeNames names the snapshot's routes in file order, as the metrics label them.
func (snap *snapshot) routeNames() []string {
	names := make([]string, len(snap.cfg.Routes))
	for i, r := range snap.cfg.Routes {
		names[i] = r.Name
	}
	return names
}
