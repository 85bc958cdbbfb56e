package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SIP holds the series of the B2BUA core.
type SIP struct {
	callsActive        prometheus.Gauge
	callAttempts       prometheus.Counter
	callOutcomes       *prometheus.CounterVec
	requests           *prometheus.CounterVec
	responses          *prometheus.CounterVec
	setupSeconds       prometheus.Histogram
	transactionTimeout *prometheus.CounterVec

	reg *prometheus.Registry

	// Pre-resolved children for the hot path: looking a child up by label
	// values costs a hash, a lock and an allocation per message.
	codeLabels [700]string
	children   sync.Map // childKey -> prometheus.Counter
}

// childKey names one child of requests or responses; code is 0 for requests.
type childKey struct {
	method, direction string
	code              int
}

func newSIP(reg *prometheus.Registry) *SIP {
	s := &SIP{
		callsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "calls_active",
			Help: "Calls in progress: from the incoming INVITE until the last leg has ended.",
		}),
		callAttempts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "call_attempts_total",
			Help: "Incoming INVITEs that started a new call.",
		}),
		callOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "call_outcomes_total",
			Help: "Finished call attempts by the final response code sent to the caller.",
		}, []string{"code"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "sip", Name: "requests_total",
			Help: "SIP requests by method and direction (in: received, out: sent).",
		}, []string{"method", "direction"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "sip", Name: "responses_total",
			Help: "SIP responses by request method, status code and direction (in: received, out: sent).",
		}, []string{"method", "code", "direction"}),
		setupSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "call_setup_seconds",
			Help:    "Time from the incoming INVITE to the 2xx relayed to the caller.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		transactionTimeout: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "sip", Name: "transaction_timeouts_total",
			Help: "Client transactions that got no final response in time (Timer B/F).",
		}, []string{"method"}),
	}
	for i := range s.codeLabels {
		s.codeLabels[i] = strconv.Itoa(i)
	}
	s.reg = reg
	reg.MustRegister(s.callsActive, s.callAttempts, s.callOutcomes, s.requests, s.responses,
		s.setupSeconds, s.transactionTimeout)
	return s
}

func (s *SIP) code(c int) string {
	if c >= 0 && c < len(s.codeLabels) {
		return s.codeLabels[c]
	}
	return "other"
}

// CallStarted counts an attempt and an active call.
func (s *SIP) CallStarted() {
	s.callAttempts.Inc()
	s.callsActive.Inc()
}

// CallEnded records the final code of an attempt that CallStarted counted.
func (s *SIP) CallEnded(finalCode int) {
	s.callsActive.Dec()
	s.callOutcomes.WithLabelValues(s.code(finalCode)).Inc()
}

// CallAnswered observes the setup time of an answered call.
func (s *SIP) CallAnswered(setup time.Duration) {
	s.setupSeconds.Observe(setup.Seconds())
}

// Request counts one SIP request; direction is "in" or "out".
func (s *SIP) Request(method, direction string) {
	s.child(childKey{method: method, direction: direction}).Inc()
}

// Response counts one SIP response to a request of method.
func (s *SIP) Response(method string, code int, direction string) {
	s.child(childKey{method: method, direction: direction, code: code}).Inc()
}

// knownMethods are the method labels; any other method counts as "other",
// so that a peer inventing methods cannot grow the series without bound.
var knownMethods = map[string]bool{
	"INVITE": true, "ACK": true, "BYE": true, "CANCEL": true, "OPTIONS": true, "UPDATE": true,
	"INFO": true, "MESSAGE": true, "NOTIFY": true, "REGISTER": true, "SUBSCRIBE": true,
	"REFER": true, "PRACK": true, "PUBLISH": true,
}

// child returns the counter for k, resolving it once.
func (s *SIP) child(k childKey) prometheus.Counter {
	if !knownMethods[k.method] {
		k.method = "other"
	}
	if k.code >= len(s.codeLabels) || k.code < 0 {
		k.code = len(s.codeLabels) // "other"
	}
	if c, ok := s.children.Load(k); ok {
		return c.(prometheus.Counter)
	}
	var c prometheus.Counter
	if k.code == 0 {
		c = s.requests.WithLabelValues(k.method, k.direction)
	} else {
		c = s.responses.WithLabelValues(k.method, s.code(k.code), k.direction)
	}
	actual, _ := s.children.LoadOrStore(k, c)
	return actual.(prometheus.Counter)
}

// Dropped exposes the SIP stack's own counts of messages it dropped
// (unparseable datagrams, responses matching no transaction) as
// callpath_sip_messages_dropped_total{reason}. Call it once.
func (s *SIP) Dropped(unparseable, unmatched func() float64) {
	for reason, f := range map[string]func() float64{"unparseable": unparseable, "unmatched": unmatched} {
		s.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "sip", Name: "messages_dropped_total",
			Help:        "SIP messages dropped without an answer: unparseable, or responses matching no transaction.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, f))
	}
}

// TransactionTimeout counts a client transaction that timed out.
func (s *SIP) TransactionTimeout(method string) {
	s.transactionTimeout.WithLabelValues(method).Inc()
}
