package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Relay holds the series of the WebSocket notification relay (package
// relay). It implements relay.Metrics.
type Relay struct {
	reg         *prometheus.Registry
	connections prometheus.Gauge
	attempts    *prometheus.CounterVec
	closed      *prometheus.CounterVec
	sink        *prometheus.CounterVec
	queued      prometheus.Counter
	delivered   *prometheus.CounterVec
	acked       prometheus.Counter
	expired     *prometheus.CounterVec
	latency     *prometheus.HistogramVec
}

// NewRelayRegistry is the registry of the standalone relay process (`callpath
// relay`): the Go and process collectors, and NewRelay's series.
func NewRelayRegistry() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Registry{reg: reg}
}

// NewRelay registers the relay's series on r.
func NewRelay(r *Registry) *Relay {
	m := &Relay{
		reg: r.reg,
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "relay", Name: "connections",
			Help: "Open relay WebSocket connections.",
		}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "relay", Name: "connect_attempts_total",
			Help: "Relay WebSocket connects by result: accepted, unauthenticated, forbidden, bad_request, over_capacity, gone, quota, unavailable, closed_early.",
		}, []string{"result"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "relay", Name: "disconnects_total",
			Help: "Relay WebSocket connections closed, by reason: client_closed, dead (no pong), replaced, shutdown, protocol_error, too_big, write_failed, binding_gone, unbind, internal.",
		}, []string{"reason"}),
		sink: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "relay", Name: "sink_requests_total",
			Help: "CloudEvents POSTed to relay sinks, by HTTP status code of the answer.",
		}, []string{"code"}),
		queued: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "relay", Name: "events_queued_total",
			Help: "Events committed to a binding's queue.",
		}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "relay", Name: "events_delivered_total",
			Help: "Events written to an app's socket: live (on arrival) or backlog (queued while the app was away or its window full).",
		}, []string{"path"}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "relay", Name: "events_acked_total",
			Help: "Events acknowledged by their apps and removed from the queues.",
		}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "relay", Name: "events_expired_total",
			Help: "Events dropped before their app took them, by reason: max_age, queue_full (relay.queue.when_full: drop_oldest).",
		}, []string{"reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "relay", Name: "delivery_latency_seconds",
			Help:    "From the sink request (live) or from the queueing (backlog) to the event written to the app's socket.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 5, 30, 300, 3600},
		}, []string{"path"}),
	}
	r.reg.MustRegister(m.connections, m.attempts, m.closed, m.sink, m.queued, m.delivered, m.acked, m.expired, m.latency)
	return m
}

// ConnectAttempt and the methods below record what the relay reports (see
// relay.Metrics for the label values).
func (m *Relay) ConnectAttempt(result string) { m.attempts.WithLabelValues(result).Inc() }
func (m *Relay) ConnectionOpened()            { m.connections.Inc() }
func (m *Relay) ConnectionClosed(reason string) {
	m.connections.Dec()
	m.closed.WithLabelValues(reason).Inc()
}
func (m *Relay) SinkRequest(code int)         { m.sink.WithLabelValues(strconv.Itoa(code)).Inc() }
func (m *Relay) Queued()                      { m.queued.Inc() }
func (m *Relay) Acked(n int)                  { m.acked.Add(float64(n)) }
func (m *Relay) Expired(reason string, n int) { m.expired.WithLabelValues(reason).Add(float64(n)) }

func (m *Relay) Delivered(path string, latency time.Duration) {
	m.delivered.WithLabelValues(path).Inc()
	m.latency.WithLabelValues(path).Observe(latency.Seconds())
}

// Depth exposes callpath_relay_bindings and callpath_relay_queued_events,
// read from depth at scrape time. Call it once.
func (m *Relay) Depth(depth func(ctx context.Context) (bindings, events int, err error)) {
	m.reg.MustRegister(&relayDepth{read: depth,
		bindings: prometheus.NewDesc(Namespace+"_relay_bindings", "Relay bindings (app instances with a sink) in the store.", nil, nil),
		events:   prometheus.NewDesc(Namespace+"_relay_queued_events", "Events waiting in relay queues for their apps' acknowledgement.", nil, nil),
	})
}

type relayDepth struct {
	read             func(ctx context.Context) (bindings, events int, err error)
	bindings, events *prometheus.Desc
}

func (d *relayDepth) Describe(ch chan<- *prometheus.Desc) { ch <- d.bindings; ch <- d.events }

func (d *relayDepth) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, e, err := d.read(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(d.bindings, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(d.bindings, prometheus.GaugeValue, float64(b))
	ch <- prometheus.MustNewConstMetric(d.events, prometheus.GaugeValue, float64(e))
}
