package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CAMARA holds the series of the CAMARA APIs and of their event delivery.
type CAMARA struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	deliveries *prometheus.CounterVec
	eventAge   prometheus.Histogram
}

func newCAMARA(reg *prometheus.Registry) *CAMARA {
	c := &CAMARA{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "camara", Name: "requests_total",
			Help: "CAMARA API requests by API, operation (operationId) and HTTP status code.",
		}, []string{"api", "operation", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "camara", Name: "request_seconds",
			Help:    "CAMARA API request latency, from the request read to the response written.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"api", "operation"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "events", Name: "deliveries_total",
			Help: "CloudEvent delivery attempts by outcome: delivered, retry, dead (dead letter), gone (sink answered 410).",
		}, []string{"outcome"}),
		eventAge: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "events", Name: "delivered_age_seconds",
			Help:    "Age of a CloudEvent when its sink took it: how long retries held it.",
			Buckets: []float64{.005, .01, .05, .1, .5, 1, 5, 30, 60, 300, 1800, 3600, 21600, 86400},
		}),
	}
	reg.MustRegister(c.requests, c.latency, c.deliveries, c.eventAge)
	return c
}

// Request counts one API request.
func (c *CAMARA) Request(api, operation string, code int, took time.Duration) {
	c.requests.WithLabelValues(api, operation, strconv.Itoa(code)).Inc()
	c.latency.WithLabelValues(api, operation).Observe(took.Seconds())
}

// Delivered counts one delivery attempt's outcome; for "delivered", age is
// how old the event was.
func (c *CAMARA) Delivered(outcome string, attempts int, age time.Duration) {
	c.deliveries.WithLabelValues(outcome).Inc()
	if outcome == "delivered" {
		c.eventAge.Observe(age.Seconds())
	}
}

// OutboxDepth exposes callpath_events_outbox_events{state} (live events
// waiting for their sinks, dead letters), read from depth at scrape time.
// Call it once.
func (c *CAMARA) OutboxDepth(depth func(ctx context.Context) (live, dead int, err error)) {
	c.reg.MustRegister(&gaugesAtScrape{
		desc: prometheus.NewDesc(Namespace+"_events_outbox_events", "CloudEvents in the outbox: live (waiting for their sink) and dead letters.", []string{"state"}, nil),
		read: func(ctx context.Context) (map[string]float64, error) {
			live, dead, err := depth(ctx)
			return map[string]float64{"live": float64(live), "dead": float64(dead)}, err
		},
	})
}
