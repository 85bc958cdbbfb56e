package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Upstream holds the series of the upstream registration client.
type Upstream struct {
	reg          *prometheus.Registry
	responses    *prometheus.CounterVec
	failures     *prometheus.CounterVec
	authFailures prometheus.Counter
}

func newUpstream(reg *prometheus.Registry) *Upstream {
	u := &Upstream{
		reg: reg,
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "upstream", Name: "register_responses_total",
			Help: "Final responses to our REGISTERs at the telco's registrar, by status code.",
		}, []string{"code"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "upstream", Name: "register_failures_total",
			Help: "REGISTERs that got no final response, by reason (timeout, transport).",
		}, []string{"reason"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "upstream", Name: "auth_failures_total",
			Help: "Credentials the registrar refused (a second challenge to fresh credentials).",
		}),
	}
	reg.MustRegister(u.responses, u.failures, u.authFailures)
	return u
}

// Response counts a final response to a REGISTER.
func (u *Upstream) Response(code int) { u.responses.WithLabelValues(strconv.Itoa(code)).Inc() }

// Failure counts a REGISTER without a final response.
func (u *Upstream) Failure(timeout bool) {
	reason := "transport"
	if timeout {
		reason = "timeout"
	}
	u.failures.WithLabelValues(reason).Inc()
}

// AuthFailure counts refused credentials.
func (u *Upstream) AuthFailure() { u.authFailures.Inc() }

// Registrations exposes callpath_upstream_registrations{state}, read from
// counts at scrape time. Call it once.
func (u *Upstream) Registrations(states []string, counts func() map[string]int) {
	u.reg.MustRegister(&stateCollector{
		desc:   prometheus.NewDesc(Namespace+"_upstream_registrations", "Upstream registrations by state.", []string{"state"}, nil),
		states: states, counts: counts,
	})
}

type stateCollector struct {
	desc   *prometheus.Desc
	states []string
	counts func() map[string]int
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.counts()
	for _, s := range c.states {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n[s]), s)
	}
}
