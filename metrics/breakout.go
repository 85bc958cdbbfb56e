package metrics

import "github.com/prometheus/client_golang/prometheus"

// Breakout holds the series of the virtual registrations in the call path.
// They are labelled by route type and direction, not by number: a label per
// registration would make a million series.
type Breakout struct {
	reg         *prometheus.Registry
	calls       *prometheus.CounterVec
	ingress     *prometheus.CounterVec
	loopReturns *prometheus.CounterVec
}

func newBreakout(reg *prometheus.Registry) *Breakout {
	b := &Breakout{
		reg: reg,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "breakout", Name: "calls_total",
			Help: "Finished calls a virtual registration acted on, by its route type, direction (MO: the caller's, MT: the callee's) " +
				"and outcome (answered_tas, answered_destination, busy, no_answer, cancelled, rejected, failed).",
		}, []string{"route_type", "direction", "outcome"}),
		ingress: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "breakout", Name: "tas_originated_calls_total",
			Help: "New calls from a registered TAS (not a loop's leg 3), by result: allowed by an INGRESS registration or refused with 403.",
		}, []string{"result"}),
		loopReturns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "breakout", Name: "loop_returns_total",
			Help: "Calls a TAS sent back into the core (leg 3) that matched a waiting loop by Session-ID, source and Max-Forwards.",
		}, []string{"route_type"}),
	}
	reg.MustRegister(b.calls, b.ingress, b.loopReturns)
	return b
}

// CallEnded counts a finished call for one registration that acted on it.
func (b *Breakout) CallEnded(routeType, direction, outcome string) {
	b.calls.WithLabelValues(routeType, direction, outcome).Inc()
}

// TASOriginated counts a new call from a TAS: allowed or refused.
func (b *Breakout) TASOriginated(allowed bool) {
	result := "refused"
	if allowed {
		result = "allowed"
	}
	b.ingress.WithLabelValues(result).Inc()
}

// LoopReturned counts a leg 3 that matched its loop.
func (b *Breakout) LoopReturned(routeType string) {
	b.loopReturns.WithLabelValues(routeType).Inc()
}

// PendingLoops exposes how many loops wait for their leg 3 (one per call
// sent to a LOOP TAS and not yet ended) as callpath_breakout_loops_pending.
// Call it once.
func (b *Breakout) PendingLoops(f func() float64) {
	b.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: "breakout", Name: "loops_pending",
		Help: "Calls sent to a LOOP TAS whose leg 3 may still come back (forgotten when the call ends).",
	}, f))
}
