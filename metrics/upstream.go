package metrics

import (
	"context"
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
	u.reg.MustRegister(&gaugesAtScrape{
		desc: prometheus.NewDesc(Namespace+"_upstream_registrations", "Upstream registrations by state.", []string{"state"}, nil),
		read: func(context.Context) (map[string]float64, error) {
			n := counts()
			out := make(map[string]float64, len(states))
			for _, s := range states {
				out[s] = float64(n[s])
			}
			return out, nil
		},
	})
}
