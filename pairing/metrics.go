package pairing

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/t3fleet/t3fleet/sessionprobe"
)

// Metric names, all under the t3fleet_dispatch_ prefix.
const (
	MetricPairs          = "t3fleet_dispatch_pairs_total"
	MetricProbeVerdicts  = "t3fleet_dispatch_probe_verdicts_total"
	MetricMintSeconds    = "t3fleet_dispatch_mint_seconds"
	MetricProxied        = "t3fleet_dispatch_proxied_requests_total"
	MetricWebSocketsOpen = "t3fleet_dispatch_websockets_open"
	MetricRefused        = "t3fleet_dispatch_refused_requests_total"
	MetricPairWaiting    = "t3fleet_dispatch_pair_waiting_requests"
	MetricHandoffs       = "t3fleet_dispatch_handoffs_total"
)

// Why the Front's fast path handed a connection to net/http (label "reason"
// of MetricHandoffs).
const (
	HandoffUntrustedPeer = "untrusted_peer" // refused there
	HandoffRequest       = "request"        // a body, an upgrade, a hop-by-hop field, an unusual target or head
	HandoffReserved      = "reserved_path"  // a path Fallback keeps (e.g. /metrics)
	HandoffTarget        = "target"         // an instance base URL with a path, a query or https
	HandoffFastPathOff   = "fast_path_off"  // FrontOptions.DisableFast, or a Transport that is no UpstreamTransport
)

// Pair outcomes (label "outcome" of MetricPairs).
const (
	OutcomeOK             = "ok"
	OutcomeMintFailed     = "mint_failed"
	OutcomeExchangeFailed = "exchange_failed"
	OutcomeLoopGuard      = "loop_guard"
)

type metrics struct {
	pairs    *prometheus.CounterVec
	verdicts *prometheus.CounterVec
	mint     prometheus.Histogram
	proxied  *prometheus.CounterVec
	wsOpen   prometheus.Gauge
	refused  *prometheus.CounterVec
	waiting  prometheus.Gauge
	handoffs *prometheus.CounterVec

	proxiedPage, proxiedOther, proxiedWS prometheus.Counter
	verdict                              [3]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		pairs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricPairs,
			Help: "Pairings by outcome, exchange endpoint and whether it fell back from the new name."},
			[]string{"outcome", "endpoint", "fallback"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricProbeVerdicts,
			Help: "Session probe verdicts on page loads that carried a cookie."}, []string{"verdict"}),
		mint: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricMintSeconds,
			Help: "Time to mint a pairing credential.", Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		proxied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricProxied,
			Help: "Requests proxied to an instance, by kind (page, other, websocket)."}, []string{"kind"}),
		wsOpen: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricWebSocketsOpen,
			Help: "WebSocket connections currently proxied."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRefused,
			Help: "Requests refused before routing, by HTTP status."}, []string{"status"}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricPairWaiting,
			Help: "Requests currently waiting for a pairing (their own or a shared one)."}),
		handoffs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricHandoffs,
			Help: "Connections the Front's fast path handed to net/http's server, by reason."}, []string{"reason"}),
	}
	if reg != nil {
		// Another Handler of this process registered them first: count
		// into its series.
		register(reg, &m.pairs)
		register(reg, &m.verdicts)
		register(reg, &m.mint)
		register(reg, &m.proxied)
		register(reg, &m.wsOpen)
		register(reg, &m.refused)
		register(reg, &m.waiting)
		register(reg, &m.handoffs)
	}
	for _, r := range []string{HandoffUntrustedPeer, HandoffRequest, HandoffReserved, HandoffTarget, HandoffFastPathOff} {
		m.handoffs.WithLabelValues(r)
	}
	m.proxiedPage = m.proxied.WithLabelValues("page")
	m.proxiedOther = m.proxied.WithLabelValues("other")
	m.proxiedWS = m.proxied.WithLabelValues("websocket")
	for _, v := range []sessionprobe.Verdict{sessionprobe.Unknown, sessionprobe.Valid, sessionprobe.Invalid} {
		m.verdict[v] = m.verdicts.WithLabelValues(v.String())
	}
	// Start the series alerts watch at zero, so a rate() sees the first one.
	for _, l := range [][3]string{
		{OutcomeOK, EndpointBrowserSession, "false"}, {OutcomeOK, EndpointBootstrap, "false"},
		{OutcomeOK, EndpointBrowserSession, "true"}, {OutcomeOK, EndpointBootstrap, "true"},
		{OutcomeMintFailed, "", "false"}, {OutcomeLoopGuard, "", "false"},
		{OutcomeExchangeFailed, EndpointBrowserSession, "false"}, {OutcomeExchangeFailed, EndpointBootstrap, "false"},
	} {
		m.pairs.WithLabelValues(l[0], l[1], l[2])
	}
	return m
}

// register registers *c with reg or, when an equal collector is registered
// already, points *c at that one. Any other failure (a collector of the
// same name with other labels or help) panics, as MustRegister does.
func register[C prometheus.Collector](reg prometheus.Registerer, c *C) {
	err := reg.Register(*c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			*c = existing
			return
		}
	}
	if err != nil {
		panic(err)
	}
}

func (m *metrics) pair(outcome, endpoint string, fallback bool) {
	m.pairs.WithLabelValues(outcome, endpoint, strconv.FormatBool(fallback)).Inc()
}
