package b2bua

import (
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sirupsen/logrus"

	"callpath/cdr"
	"callpath/routing"
)

type callState int

const (
	stateEarly     callState = iota // INVITE sent on, no 2xx yet
	stateAnswered                   // 2xx relayed to the caller, its ACK not yet seen
	stateConfirmed                  // ACK relayed: both dialogs confirmed
	stateEnded
)

// abortRequest asks the setup of an early call to give up: send CANCEL on
// the outgoing leg and, unless the caller already has a final response,
// answer it with code.
type abortRequest struct {
	code   int    // response for the caller; 0 when it already has its final one
	reason string // reason phrase of code
	final  int    // CDR final code when code is 0
	party  cdr.HangupParty
	why    string
}

// call bridges the incoming leg a with the outgoing leg b, the one that
// answered among the legs its plan rang.
type call struct {
	srv     *Server
	id      string // Call-ID of the incoming leg
	from    string
	to      string
	started time.Time
	a       *leg
	// reliable sends the caller's provisional responses reliably when
	// it requires 100rel (nil otherwise); set before the call is shared.
	reliable *reliableSender

	mu sync.Mutex
	// b is the outgoing leg of the call: the one that answered, or, while
	// the call rings, the only one ringing (nil when several ring at once).
	b          *leg
	legs       []*leg         // every outgoing leg created, in order
	loops      []*pendingLoop // loops waiting for their leg 3, forgotten when the call ends
	breakout   []breakoutUse  // the registrations that acted on the call, for metrics
	answeredBy routing.BranchKind
	sid        SessionID // Local: the caller's UUID; Remote: the callee's
	sidOut     string    // sid formatted for the outgoing leg, cached: sent on every message
	sidIn      string    // sid reversed, for the incoming leg
	state      callState
	answered   time.Time
	inviteBusy bool // an INVITE transaction (initial or re-INVITE) is in progress on the call
	ended      bool
	setup      *setup        // while the outgoing INVITE is unanswered
	earlyAbort *abortRequest // an abort (CANCEL, BYE, drain) that came before the setup started
	keepalive  *time.Timer   // the next dialog keepalive probe (keepalive.go)
	log        *logrus.Entry
}

// logger returns the per-call logger, built on first use so calls that log
// nothing pay nothing for it.
func (c *call) logger() *logrus.Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.log == nil {
		c.log = c.srv.log.WithFields(logrus.Fields{"call_id": c.id, "session_id": c.sid.Local})
	}
	return c.log
}

// peer returns the other leg of the call.
func (c *call) peer(l *leg) *leg {
	if l == c.a {
		return c.outgoing()
	}
	return c.a
}

// outgoing returns leg b: the answered leg, or the only one ringing.
func (c *call) outgoing() *leg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b
}

// addLeg files a new outgoing leg with the call and the call table.
func (c *call) addLeg(l *leg, only bool) {
	c.mu.Lock()
	c.legs = append(c.legs, l)
	if only {
		c.b = l
	}
	c.mu.Unlock()
	c.srv.calls.add(l)
}

// setOutgoing makes l leg b: the one that answered (or the only one left
// ringing, after a fallback).
func (c *call) setOutgoing(l *leg, kind routing.BranchKind) {
	c.mu.Lock()
	c.b = l
	if kind != 0 {
		c.answeredBy = kind
	}
	c.mu.Unlock()
}

// nextLegIndex numbers the next outgoing leg (2, 3, …).
func (c *call) nextLegIndex() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.legs) + 2
}

// sessionIDFor returns the Session-ID value for a message sent on leg l: on
// the outgoing leg we speak for the caller, on the incoming leg for the callee.
func (c *call) sessionIDFor(l *leg) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sidOut == "" {
		c.sidOut, c.sidIn = c.sid.String(), c.sid.Reversed().String()
	}
	if l == c.a {
		return c.sidIn
	}
	return c.sidOut
}

// learnSessionID records the callee's UUID from a message received on the
// outgoing leg (its Local part), once known.
func (c *call) learnSessionID(l *leg, msg sip.Message) {
	if l == c.a {
		return
	}
	h := firstHeader(msg, SessionIDHeader)
	if h == nil {
		return
	}
	sid, err := ParseSessionID(h.Value())
	if err != nil || sid.Local == NullUUID {
		return
	}
	c.mu.Lock()
	if c.sid.Remote == NullUUID {
		c.sid.Remote = sid.Local
		c.sidOut, c.sidIn = "", "" // formatted again on next use
	}
	c.mu.Unlock()
}

// setSessionID writes the Session-ID header for leg l into msg.
func (c *call) setSessionID(l *leg, msg sip.Message) {
	msg.AppendHeader(sip.NewHeader(SessionIDHeader, c.sessionIDFor(l)))
}

// beginInvite marks an INVITE transaction in progress; false means one is
// already running and the new one must get 491 (RFC 3261 §14.1, glare).
func (c *call) beginInvite() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inviteBusy || c.ended {
		return false
	}
	c.inviteBusy = true
	return true
}

func (c *call) endInvite() {
	c.mu.Lock()
	c.inviteBusy = false
	c.mu.Unlock()
}

func (c *call) getState() callState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *call) setState(s callState) {
	c.mu.Lock()
	if !c.ended {
		c.state = s
		if s == stateAnswered && c.answered.IsZero() {
			c.answered = time.Now()
		}
	}
	c.mu.Unlock()
}

// requestAbort asks an early call to stop; it reports false when the call
// has been answered (then the caller of requestAbort must hang up with BYE).
func (c *call) requestAbort(a abortRequest) bool {
	c.mu.Lock()
	if c.state != stateEarly {
		c.mu.Unlock()
		return c.ended
	}
	st := c.setup
	if st == nil {
		if c.earlyAbort == nil {
			c.earlyAbort = &a
		}
		c.mu.Unlock()
		return true
	}
	c.mu.Unlock()
	return st.abort(a)
}

// end finishes the call exactly once: it leaves the call table, counts the
// outcome and writes the CDR.
func (c *call) end(party cdr.HangupParty, finalCode int, reason string) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	c.state = stateEnded
	c.stopKeepaliveLocked()
	answered := c.answered
	sid := c.sid
	legs, loops, uses, answeredBy := c.legs, c.loops, c.breakout, c.answeredBy
	c.mu.Unlock()
	if c.reliable != nil {
		c.reliable.stop() // not under c.mu: the sender logs through c.logger
	}

	s := c.srv
	s.calls.remove(c.a.key)
	s.calls.remove(originKey(c.a.callID, c.a.remoteTag))
	c.a.forgetAck(nil)
	for _, l := range legs {
		s.calls.remove(l.key)
		l.forgetAck(nil)
	}
	for _, p := range loops {
		s.loops.remove(p)
	}
	if !answered.IsZero() && finalCode < 300 {
		finalCode = 200
	}
	s.metrics.CallEnded(finalCode)
	if len(uses) > 0 {
		outcome := breakoutOutcome(finalCode, party, answeredBy)
		for _, u := range uses {
			s.breakoutMetrics.CallEnded(u.routeType, u.direction, outcome)
		}
	}
	s.active.Add(-1)

	now := time.Now()
	rec := cdr.Record{
		CallID: c.id, SessionID: sid.Local, From: c.from, To: c.to,
		StartedAt: c.started, AnsweredAt: answered, EndedAt: now,
		FinalCode: finalCode, HangupBy: party, Reason: reason,
		Legs: []cdr.Leg{{Index: c.a.index, CallID: c.a.callID, Peer: c.a.remote.String()}},
	}
	for _, l := range legs {
		rec.Legs = append(rec.Legs, cdr.Leg{Index: l.index, CallID: l.callID, Peer: l.remote.String()})
	}
	if s.recorder != nil {
		s.recorder.RecordCall(s.ctx, rec)
	}
	if s.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		c.logger().WithFields(logrus.Fields{"code": finalCode, "hangup_by": party, "reason": reason}).Debug("call ended")
	}
}
