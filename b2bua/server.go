// Package b2bua is callpath's SIP back-to-back user agent: every call is an
// incoming dialog and one or more outgoing dialogs with their own Call-IDs,
// tags, CSeqs, Vias and Contacts, bridged here. It runs on callpath's own
// transaction layer (package sipstack) with sipgo's messages and stream
// transports, and keeps its own dialog state.
package b2bua

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sirupsen/logrus"

	"callpath/cdr"
	"callpath/metrics"
	"callpath/sipstack"
)

// Config is what the B2BUA needs to know; the app fills it from conf.
type Config struct {
	Listen           Listen
	TLS              *tls.Config // for TLS and WSS listeners; nil when neither listens
	ClientTLS        *tls.Config // for outgoing TLS and WSS connections; nil: system CAs
	TASClientTLS     *tls.Config // for TLS connections to TASes; nil: ClientTLS
	AdvertisedHost   string
	UserAgent        string
	UDPReceiveBuffer int
	NoAnswerTimeout  time.Duration
	MaxForwards      int
	T1, T2, T4       time.Duration
	Linger           time.Duration // how long finished transactions absorb retransmissions (Timers D, J, L, M)
	RetryAfter       time.Duration // sent with 503 while draining
	// DialogKeepalive is how often an answered call probes both dialogs
	// with an in-dialog OPTIONS (keepalive.go); 0: never.
	DialogKeepalive time.Duration
}

// Listen holds one listen address per transport; empty disables it.
type Listen struct {
	UDP, TCP, TLS, WS, WSS string
}

// CallRecorder receives the CDR of every finished call. It must not block.
type CallRecorder interface {
	RecordCall(ctx context.Context, r cdr.Record)
}

// Deps are the parts the B2BUA works with.
type Deps struct {
	Planner  Planner      // required
	Recorder CallRecorder // nil: no CDRs
	Metrics  *metrics.Registry
	Log      *logrus.Entry
	// TASSources recognises calls from registered TASes (INGRESS, a loop's
	// leg 3); nil: no call comes from a TAS.
	TASSources TASSources
	// Resolver answers the SRV and address lookups of sips: next hops;
	// nil: the system's resolver.
	Resolver sipstack.DNSResolver
}

// Server is the B2BUA.
type Server struct {
	cfg             Config
	log             *logrus.Entry
	planner         Planner
	tasSources      TASSources
	resolver        sipstack.DNSResolver
	recorder        CallRecorder
	metrics         *metrics.SIP
	breakoutMetrics *metrics.Breakout
	loops           *loopTable

	stack *sipstack.Stack
	calls *callTable

	// Headers every message carries, built once and shared (read-only).
	userAgentHdr, serverHdr sip.Header
	active                  atomic.Int64
	draining                atomic.Bool
	listeners               *listenerSet

	// ctx lives as long as the server; call teardown runs on it, not on the
	// context of the request that triggered it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var sipStackOnce sync.Once

// InitSIPStack sets sipgo's process-wide state: its RFC 3261 timers, which
// only sipgo's own transactions use (callpath's are in sipstack, but tests
// run sipgo phones in the same process), and the logger its stream
// transports use where no logger can be passed in. sipgo keeps both in
// package variables that its goroutines read unguarded, so they are set
// once, before any SIP traffic; later calls do nothing.
func InitSIPStack(t1, t2, t4 time.Duration, log *logrus.Entry) {
	sipStackOnce.Do(func() {
		if t1 > 0 {
			sip.SetTimers(t1, t2, t4)
		}
		sip.SetDefaultLogger(slog.New(newLogrusHandler(log.WithField("component", "sipgo"))))
	})
}

// New builds a B2BUA; Start opens its listeners.
func New(cfg Config, d Deps) (*Server, error) {
	if d.Planner == nil || d.Metrics == nil || d.Log == nil {
		return nil, errors.New("b2bua: planner, metrics and logger are required")
	}
	log, m := d.Log, d.Metrics.SIP
	InitSIPStack(cfg.T1, cfg.T2, cfg.T4, log)
	slogger := slog.New(newLogrusHandler(log.WithField("component", "sipgo")))
	s := &Server{cfg: cfg, log: log, planner: d.Planner, tasSources: d.TASSources, resolver: d.Resolver,
		recorder: d.Recorder, metrics: m, breakoutMetrics: d.Metrics.Breakout, loops: newLoopTable(),
		calls:        newCallTable(),
		userAgentHdr: sip.NewHeader("User-Agent", cfg.UserAgent), serverHdr: sip.NewHeader("Server", cfg.UserAgent)}
	s.stack = sipstack.New(sipstack.Config{
		T1: cfg.T1, T2: cfg.T2, T4: cfg.T4, Linger: cfg.Linger,
		ClientTLS: cfg.ClientTLS, Log: log.WithField("component", "sipstack"), SipgoLog: slogger,
		Unmatched: s.onUnmatchedResponse,
	}, s.dispatch)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	d.Metrics.Breakout.PendingLoops(func() float64 { return float64(s.loops.len()) })
	st := s.stack.Stats()
	m.Dropped(func() float64 { return float64(st.Unparseable.Load()) }, func() float64 { return float64(st.Unmatched.Load()) })
	return s, nil
}

// dispatch hands a request to the handler of its method.
func (s *Server) dispatch(req *sip.Request, tx sip.ServerTransaction) {
	switch req.Method {
	case sip.INVITE:
		s.onInvite(req, tx)
	case sip.ACK:
		s.onAck(req, tx)
	case sip.BYE:
		s.onBye(req, tx)
	case sip.CANCEL:
		s.onCancel(req, tx)
	case sip.OPTIONS:
		s.onOptions(req, tx)
	case sip.PRACK:
		s.onPRACK(req, tx)
	case sip.UPDATE, sip.INFO, sip.MESSAGE, sip.NOTIFY:
		s.onInDialog(req, tx)
	default:
		s.onNoRoute(req, tx)
	}
}

// Start opens the configured listeners and serves them until Close.
func (s *Server) Start() error {
	ls, err := openListeners(s.cfg)
	if err != nil {
		return err
	}
	s.listeners = ls
	ls.serve(s.stack, &s.wg, s.log)
	return nil
}

// Addr returns the bound address of a transport ("udp", "tcp", "tls", "ws",
// "wss"), or "" when it does not listen.
func (s *Server) Addr(transport string) string {
	if s.listeners == nil {
		return ""
	}
	return s.listeners.addr(transport)
}

// ActiveCalls is the number of calls in progress.
func (s *Server) ActiveCalls() int { return int(s.active.Load()) }

// Transactions is the number of SIP server and client transactions held.
func (s *Server) Transactions() (server, client int) { return s.stack.Transactions() }

// Close stops at once: listeners, transactions and connections go; calls in
// progress are dropped without BYE. Use Drain first for a graceful stop.
func (s *Server) Close() error {
	s.cancel()
	if s.listeners != nil {
		s.listeners.close()
	}
	err := s.stack.Close()
	s.wg.Wait()
	return err
}

// respond sends a response on a server transaction and counts it.
func (s *Server) respond(tx sip.ServerTransaction, req *sip.Request, res *sip.Response) {
	if res.StatusCode != 100 {
		res.AppendHeader(s.serverHdr)
	}
	if err := tx.Respond(res); err != nil {
		s.log.WithError(err).WithField("call_id", callIDOf(req)).Debug("respond failed")
		return
	}
	s.metrics.Response(string(req.Method), res.StatusCode, "out")
}

// reply answers a request with a body-less response.
func (s *Server) reply(tx sip.ServerTransaction, req *sip.Request, code int, reason string, headers ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range headers {
		res.AppendHeader(h)
	}
	s.respond(tx, req, res)
}

func callIDOf(m sip.Message) string {
	if h := m.CallID(); h != nil {
		return h.Value()
	}
	return ""
}
