// Package admin is tokenproxy's admin listener, apart from the proxy port: liveness, readiness, Prometheus
// metrics and the routes in service.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/tokenproxy/tokenproxy/proxy"
)

// Source is what the admin endpoints read from the proxy.
type Source interface {
	// Ready reports whether the proxy serves: configuration loaded, listening, not draining, requests to
	// upstreams completing.
	Ready() bool
	// Status describes the routes in service, with no secret and no token, as this replica knows them.
	Status() []proxy.RouteStatus
	// FleetStatus is Status with what the shared token store adds: a refusal hold another replica put on a
	// route. Once ctx is done the store is asked no more.
	FleetStatus(ctx context.Context) []proxy.RouteStatus
	// StoreStatus describes where tokens are kept.
	StoreStatus() proxy.StoreStatus
	// CertificatesCached is the number of intercepted hosts with a leaf certificate ready.
	CertificatesCached() int
}

var _ Source = (*proxy.Server)(nil)

// Server serves the admin endpoints.
type Server struct {
	src     Source
	metrics *Metrics
	http    *http.Server
}

// New returns an admin server for src. Its metrics include the state gauges read from src.
func New(src Source, m *Metrics, log *slog.Logger) *Server {
	m.Watch(src)
	a := &Server{src: src, metrics: m}
	a.http = &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return a
}

// Handler routes the admin endpoints:
//   - /healthz: 200 while the process runs;
//   - /readyz: 200 when the proxy serves, 503 before it listens, from the first moment of a drain, and while
//     requests to upstreams have stopped completing;
//   - /metrics: Prometheus text format;
//   - /routes: where tokens are kept, the routes in service and their tokens' state, as JSON.
func (a *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		text(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.src.Ready() {
			text(w, http.StatusServiceUnavailable, "not ready: starting, draining, or requests to upstreams stopped completing (the log says which)\n")
			return
		}
		text(w, http.StatusOK, "ready\n")
	})
	mux.Handle("GET /metrics", a.metrics.Handler())
	mux.HandleFunc("GET /routes", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		// The shared store is asked once per route; a Redis that does not answer costs a second at most.
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		routes := a.src.FleetStatus(ctx)
		cancel()
		_ = enc.Encode(struct {
			Store  proxy.StoreStatus   `json:"store"`
			Routes []proxy.RouteStatus `json:"routes"`
		}{a.src.StoreStatus(), routes})
	})
	return mux
}

// Serve answers admin requests on l until Shutdown.
func (a *Server) Serve(l net.Listener) error {
	err := a.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the admin server.
func (a *Server) Shutdown(ctx context.Context) error { return a.http.Shutdown(ctx) }

func text(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
