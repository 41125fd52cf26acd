package admin

import (
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tokenproxy/tokenproxy/internal/buildinfo"
	"github.com/tokenproxy/tokenproxy/proxy"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// Metrics is tokenproxy's Prometheus registry and the recorder the proxy and the token cache report to.
// Labels carry route names, status codes and kinds; never a secret, a token or a fingerprint.
type Metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	errors        *prometheus.CounterVec
	fetches       *prometheus.CounterVec
	fetchDuration *prometheus.HistogramVec
	lookups       *prometheus.CounterVec
	replays       *prometheus.CounterVec
	refusals      *prometheus.CounterVec
	connections   *prometheus.GaugeVec
	refusedConns  *prometheus.CounterVec
	denials       *prometheus.CounterVec
	reloads       *prometheus.CounterVec
	lastReload    prometheus.Gauge
	storeOps      *prometheus.CounterVec

	routesMu sync.Mutex
	// routes are the routes whose series may exist: those in service, and those a reload removed until a
	// later reload finds none of their series (a request that ran on the old configuration may add one).
	routes map[string]bool
	// series holds the per-request children of the routes in service and of hosts of no route, each looked
	// up by label values once and kept, instead of on every request; replaced whole by RoutesInService. A
	// route not in it (a request that ran on a configuration since replaced) takes the label-values path.
	series atomic.Pointer[map[string]*routeSeries]
}

// routeSeries are one route's children of the metrics every request counts, each looked up by label values
// the first time it is needed (so a series still appears only once it has something to count) and kept.
type routeSeries struct {
	m        *Metrics
	route    string
	mu       sync.Mutex // one writer at a time of what follows
	duration atomic.Pointer[prometheus.Observer]
	// codes and lookups are children by status code (tokenproxy_requests_total) and by how the token was
	// found (tokenproxy_token_cache_total), copied on write so that a request reads them without a lock.
	codes   atomic.Pointer[map[int]prometheus.Counter]
	lookups atomic.Pointer[map[tokensource.Via]prometheus.Counter]
}

func (m *Metrics) newRouteSeries(route string) *routeSeries {
	s := &routeSeries{m: m, route: route}
	s.codes.Store(&map[int]prometheus.Counter{})
	s.lookups.Store(&map[tokensource.Via]prometheus.Counter{})
	return s
}

// observer is the route's request duration histogram.
func (s *routeSeries) observer() prometheus.Observer {
	if o := s.duration.Load(); o != nil {
		return *o
	}
	o := s.m.duration.WithLabelValues(s.route)
	s.duration.Store(&o)
	return o
}

// code is the route's request counter for status.
func (s *routeSeries) code(status int) prometheus.Counter {
	if c, ok := (*s.codes.Load())[status]; ok {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m.requests.WithLabelValues(s.route, statusCode(status))
	s.codes.Store(with(*s.codes.Load(), status, c))
	return c
}

// lookup is the route's token cache counter for via.
func (s *routeSeries) lookup(via tokensource.Via) prometheus.Counter {
	if c, ok := (*s.lookups.Load())[via]; ok {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m.lookups.WithLabelValues(s.route, string(via))
	s.lookups.Store(with(*s.lookups.Load(), via, c))
	return c
}

// with returns a copy of m with k set to v.
func with[K comparable, V any](m map[K]V, k K, v V) *map[K]V {
	next := make(map[K]V, len(m)+1)
	maps.Copy(next, m)
	next[k] = v
	return &next
}

// seriesOf returns the children of a route in service, or nil.
func (m *Metrics) seriesOf(route string) *routeSeries {
	return (*m.series.Load())[route]
}

var _ proxy.Metrics = (*Metrics)(nil)

// NewMetrics returns a registry with tokenproxy's metrics, the Go runtime's and the process's.
func NewMetrics(info buildinfo.Info) *Metrics {
	m := &Metrics{
		reg:    prometheus.NewRegistry(),
		routes: map[string]bool{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenproxy_requests_total",
			Help: "Requests answered to apps, by route (- when unmatched) and the status code the app got.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokenproxy_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer, by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenproxy_errors_total",
			Help: "tokenproxy's own failure answers and refusals, by route and kind (token, upstream, policy).",
		}, []string{"route", "kind"}),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenproxy_token_fetches_total",
			Help: "Token requests to token endpoints, by route and result (ok, status, network, timeout, not-json, no-token, too-large).",
		}, []string{"route", "result"}),
		fetchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokenproxy_token_fetch_duration_seconds",
			Help:    "Duration of token requests, by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenproxy_token_cache_total",
			Help: "Requests given a token, by route and how: hit (cached), wait (another request's fetch), fetch (their own).",
		}, []string{"route", "result"}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenproxy_replays_total",
			Help: "Requests sent again with a fresh token after the supplier answered 401, by route.",
		}, []string{"route"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenproxy_token_refusal_backoffs_total",
			Help: "Times a route stopped fetching on refusals: a token fetched after the supplier refused one was refused too.",
		}, []string{"route"}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tokenproxy_connections",
			Help: "Client connections open now, by kind: plain, intercepted, tunnel.",
		}, []string{"kind"}),
		refusedConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenproxy_connections_refused_total",
			Help: "Client connections closed as they arrived, over a gateway's connection limits, by reason: total, per-address.",
		}, []string{"reason"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenproxy_client_denials_total",
			Help: "Requests refused by the clients rules, by reason: address, credentials, route.",
		}, []string{"reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenproxy_config_reloads_total",
			Help: "Configuration reloads, by result (success, failure).",
		}, []string{"result"}),
		storeOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenproxy_store_operations_total",
			Help: "Calls to the shared token store, by op (load, save, drop, lock, unlock, hold, held) and result (ok, miss, held, error, timeout, unreadable).",
		}, []string{"op", "result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tokenproxy_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration in service was loaded (start-up or the last successful reload), in Unix seconds.",
		}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tokenproxy_build_info",
		Help: "Always 1; the labels say which build runs.",
	}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(info.Version, info.ShortRevision(), info.GoVersion).Set(1)
	for _, kind := range []proxy.ConnKind{proxy.ConnPlain, proxy.ConnIntercepted, proxy.ConnTunnel} {
		m.connections.WithLabelValues(string(kind))
	}
	for _, reason := range []string{"total", "per-address"} {
		m.refusedConns.WithLabelValues(reason)
	}
	for _, result := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(result)
	}
	for _, kind := range []string{proxy.StepUpstream, proxy.StepPolicy} { // the answers to hosts of no route
		m.errors.WithLabelValues(unmatched, kind)
	}
	m.series.Store(&map[string]*routeSeries{unmatched: m.newRouteSeries(unmatched)})
	m.reg.MustRegister(m.requests, m.duration, m.errors, m.fetches, m.fetchDuration, m.lookups, m.replays, m.refusals,
		m.connections, m.refusedConns, m.denials, m.reloads, m.lastReload, m.storeOps, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Watch adds the gauges read from the proxy at each scrape: token expiry and backoff per route, and the
// cached leaf certificates.
func (m *Metrics) Watch(src Source) {
	m.reg.MustRegister(&stateCollector{src: src})
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is the registry itself, for tests and for more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ConfigReloaded counts a reload; a successful one (and the first load) also sets the timestamp.
func (m *Metrics) ConfigReloaded(ok bool, at time.Time) {
	if !ok {
		m.reloads.WithLabelValues("failure").Inc()
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.ConfigLoaded(at)
}

// ConfigLoaded sets the timestamp of the configuration in service.
func (m *Metrics) ConfigLoaded(at time.Time) {
	m.lastReload.Set(float64(at.UnixNano()) / 1e9)
}

// unmatched is the route label of requests to hosts of no route.
const unmatched = "-"

// RoutesInService implements proxy.Metrics: the series alerts watch with increase() (errors by kind,
// replays, refusal backoffs) start at zero for every route in service, so the first event after a start
// or a reload is an increase, and every series of a route no longer in service is dropped. The children
// requests count are looked up here, once per route, and those of the routes removed are let go.
func (m *Metrics) RoutesInService(routes []string) {
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	// Requests of the routes removed count by label values from here on, so none counts into a child
	// whose series is dropped below; a route kept keeps its children, whose series stay.
	prev := *m.series.Load()
	series := make(map[string]*routeSeries, len(routes)+1)
	series[unmatched] = prev[unmatched]
	for _, name := range routes {
		if s := prev[name]; s != nil {
			series[name] = s
		} else {
			series[name] = m.newRouteSeries(name)
		}
	}
	m.series.Store(&series)
	inService := make(map[string]bool, len(routes))
	for _, name := range routes {
		inService[name] = true
		for _, kind := range []string{proxy.StepToken, proxy.StepUpstream, proxy.StepPolicy} {
			m.errors.WithLabelValues(name, kind)
		}
		m.replays.WithLabelValues(name)
		m.refusals.WithLabelValues(name)
	}
	for name := range m.routes {
		if inService[name] || name == unmatched {
			continue
		}
		dropped := 0
		for _, v := range []*prometheus.MetricVec{m.requests.MetricVec, m.duration.MetricVec, m.errors.MetricVec,
			m.fetches.MetricVec, m.fetchDuration.MetricVec, m.lookups.MetricVec, m.replays.MetricVec, m.refusals.MetricVec} {
			dropped += v.DeletePartialMatch(prometheus.Labels{"route": name})
		}
		if dropped == 0 {
			delete(m.routes, name)
		}
	}
	for name := range inService {
		m.routes[name] = true
	}
}

// Request implements proxy.Metrics.
func (m *Metrics) Request(route string, status int, took time.Duration) {
	if s := m.seriesOf(route); s != nil {
		s.code(status).Inc()
		s.observer().Observe(took.Seconds())
		return
	}
	m.requests.WithLabelValues(route, statusCode(status)).Inc()
	m.duration.WithLabelValues(route).Observe(took.Seconds())
}

// Error implements proxy.Metrics.
func (m *Metrics) Error(route, kind string) { m.errors.WithLabelValues(route, kind).Inc() }

// Replay implements proxy.Metrics.
func (m *Metrics) Replay(route string) { m.replays.WithLabelValues(route).Inc() }

// StoreOperation implements redisstore.Metrics.
func (m *Metrics) StoreOperation(op, result string) { m.storeOps.WithLabelValues(op, result).Inc() }

// Denied implements proxy.Metrics.
func (m *Metrics) Denied(reason string) { m.denials.WithLabelValues(reason).Inc() }

// ConnectionOpened implements proxy.Metrics.
func (m *Metrics) ConnectionOpened(kind proxy.ConnKind) {
	m.connections.WithLabelValues(string(kind)).Inc()
}

// ConnectionRefused implements proxy.Metrics.
func (m *Metrics) ConnectionRefused(reason string) { m.refusedConns.WithLabelValues(reason).Inc() }

// ConnectionClosed implements proxy.Metrics.
func (m *Metrics) ConnectionClosed(kind proxy.ConnKind) {
	m.connections.WithLabelValues(string(kind)).Dec()
}

// TokenLookup implements tokensource.Metrics.
func (m *Metrics) TokenLookup(route string, via tokensource.Via) {
	if s := m.seriesOf(route); s != nil {
		s.lookup(via).Inc()
		return
	}
	m.lookups.WithLabelValues(route, string(via)).Inc()
}

// RefusalBackoff implements tokensource.Metrics.
func (m *Metrics) RefusalBackoff(route string) { m.refusals.WithLabelValues(route).Inc() }

// TokenFetched implements tokensource.Metrics.
func (m *Metrics) TokenFetched(route, result string, took time.Duration) {
	m.fetches.WithLabelValues(route, result).Inc()
	m.fetchDuration.WithLabelValues(route).Observe(took.Seconds())
}

// codes holds the label of every status code, so counting a request does not format one.
var codes = func() (c [600]string) {
	for i := range c {
		c[i] = strconv.Itoa(i)
	}
	return c
}()

func statusCode(status int) string {
	if status >= 0 && status < len(codes) {
		return codes[status]
	}
	return strconv.Itoa(status)
}

// stateCollector reads the state of the routes in service at each scrape.
type stateCollector struct{ src Source }

var (
	expiryDesc = prometheus.NewDesc("tokenproxy_token_expiry_seconds",
		"Seconds until the route's cached token expires; absent while none is cached.", []string{"route"}, nil)
	backoffDesc = prometheus.NewDesc("tokenproxy_token_backoff",
		"1 while the route's token endpoint is backed off after failures, else 0.", []string{"route"}, nil)
	certsDesc = prometheus.NewDesc("tokenproxy_certificates_cached",
		"Intercepted hosts with a leaf certificate ready.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- expiryDesc
	ch <- backoffDesc
	ch <- certsDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.src.Status() {
		if r.Token.ExpiresInSeconds != nil {
			ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, *r.Token.ExpiresInSeconds, r.Name)
		}
		backoff := 0.0
		if r.Token.BackedOffUntil != nil {
			backoff = 1
		}
		ch <- prometheus.MustNewConstMetric(backoffDesc, prometheus.GaugeValue, backoff, r.Name)
	}
	ch <- prometheus.MustNewConstMetric(certsDesc, prometheus.GaugeValue, float64(c.src.CertificatesCached()))
}
