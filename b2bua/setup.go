package b2bua

import (
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"callpath/cdr"
	"callpath/sipstack"
)

// setup drives a call from the outgoing INVITE until it is answered or
// fails. It is event-driven: the callee's responses, the caller's CANCEL, an
// abort (BYE on the early dialog, drain) and its timers all arrive as calls
// on whatever goroutine noticed them (mostly a socket's read loop), so no
// goroutine waits through the ringing.
type setup struct {
	srv *Server
	c   *call
	req *sip.Request // the caller's INVITE
	tx  sip.ServerTransaction
	out *sip.Request // our INVITE to the callee

	mu            sync.Mutex
	ctr           sip.ClientTransaction
	over          bool
	aborted       *abortRequest
	provisional   bool // the callee sent a provisional response: CANCEL is allowed
	cancelPending bool // CANCEL wanted before a provisional response came
	noAnswer      *time.Timer
	giveUp        *time.Timer
}

// startSetup sends the outgoing INVITE; the caller has its 100 already.
func (s *Server) startSetup(c *call, req *sip.Request, tx sip.ServerTransaction, out *sip.Request) {
	st := &setup{srv: s, c: c, req: req, tx: tx, out: out}
	st.mu.Lock()
	defer st.mu.Unlock()
	c.mu.Lock()
	early := c.earlyAbort
	if early == nil {
		c.setup = st
	}
	c.mu.Unlock()
	if early != nil {
		// Cancelled (or drained) before the INVITE went out: it never will.
		if early.code != 0 {
			s.reply(tx, req, early.code, early.reason)
		}
		st.finish(early.party, early.finalCode(), early.why)
		return
	}
	ctr, err := s.stack.RequestFunc(s.ctx, out, sipstack.Callbacks{Response: st.onResponse, Failure: st.onFailure})
	if err != nil {
		c.logger().WithError(err).Info("outgoing INVITE failed")
		s.reply(tx, req, 503, "Service Unavailable")
		st.finish(cdr.HangupGateway, 503, "next hop unreachable")
		return
	}
	s.metrics.Request("INVITE", "out")
	st.ctr = ctr
	st.noAnswer = time.AfterFunc(s.cfg.NoAnswerTimeout, func() {
		st.abort(abortRequest{code: 408, reason: "Request Timeout", party: cdr.HangupGateway, why: "no answer"})
	})
}

// finish ends the setup and, with it, the call unless it was answered
// (party and code then say how the call ended). Called with st.mu held.
func (st *setup) finish(party cdr.HangupParty, code int, why string) {
	st.end()
	st.c.end(party, code, why)
}

// end stops the setup's timers and frees the call for re-INVITEs. Called
// with st.mu held.
func (st *setup) end() {
	st.over = true
	if st.noAnswer != nil {
		st.noAnswer.Stop()
	}
	if st.giveUp != nil {
		st.giveUp.Stop()
	}
	st.c.mu.Lock()
	if st.c.setup == st {
		st.c.setup = nil
	}
	st.c.mu.Unlock()
	st.c.endInvite()
}

// onResponse handles a response of the callee to our INVITE. A 2xx may
// overtake a provisional response on another read loop: once the setup is
// over, late provisionals are dropped.
func (st *setup) onResponse(res *sip.Response) {
	s, c := st.srv, st.c
	s.metrics.Response("INVITE", res.StatusCode, "in")
	c.learnSessionID(c.b, res)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.over {
		if res.StatusCode >= 200 && res.StatusCode < 300 && st.aborted != nil {
			s.ackAndBye(c, st.out, res)
		}
		return
	}
	switch {
	case res.StatusCode < 200:
		st.provisional = true
		if st.cancelPending {
			st.cancelPending = false
			s.cancelOutgoing(st.out)
		}
		if st.aborted == nil && res.StatusCode > 100 {
			s.relayResponse(c, c.a, st.tx, st.req, res, res.StatusCode, res.Reason)
		}
	case res.StatusCode < 300:
		if st.aborted != nil {
			// Answered after we gave up: confirm and hang up at once.
			s.ackAndBye(c, st.out, res)
			st.finish(st.aborted.party, st.aborted.finalCode(), st.aborted.why)
			return
		}
		st.end()
		s.answer(c, st.req, st.tx, st.out, st.ctr, res)
	default:
		if st.aborted != nil {
			st.finish(st.aborted.party, st.aborted.finalCode(), st.aborted.why)
			return
		}
		code, reason := mapFinalResponse(res.StatusCode, res.Reason)
		s.relayResponse(c, c.a, st.tx, st.req, res, code, reason)
		st.finish(cdr.HangupCallee, code, strconv.Itoa(res.StatusCode)+" "+res.Reason)
	}
}

// onFailure handles the end of our INVITE transaction without a final
// response: a timeout or a transport error.
func (st *setup) onFailure(err error) {
	s := st.srv
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.over {
		return
	}
	if st.aborted != nil {
		st.finish(st.aborted.party, st.aborted.finalCode(), st.aborted.why)
		return
	}
	code, reason := s.failureResponse("INVITE", err)
	s.reply(st.tx, st.req, code, reason)
	st.finish(cdr.HangupGateway, code, "no response from next hop")
}

// abort gives up on the call: the caller gets a.code (unless it has its
// final response already), the callee a CANCEL as soon as RFC 3261 §9.1
// allows one, and the callee's final response is awaited for 64*T1 at most.
// It reports false when the call was answered first.
func (st *setup) abort(a abortRequest) bool {
	s := st.srv
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.over {
		state := st.c.getState()
		return state != stateAnswered && state != stateConfirmed
	}
	if st.aborted != nil {
		return true
	}
	st.aborted = &a
	if a.code != 0 {
		s.reply(st.tx, st.req, a.code, a.reason)
	}
	if st.provisional {
		s.cancelOutgoing(st.out)
	} else {
		st.cancelPending = true // RFC 3261 §9.1: CANCEL only after a provisional response
	}
	st.giveUp = time.AfterFunc(64*s.cfg.T1, st.onGiveUp)
	return true
}

// onGiveUp ends an aborted setup whose callee never sent a final response.
func (st *setup) onGiveUp() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.over {
		return
	}
	st.ctr.Terminate()
	st.finish(st.aborted.party, st.aborted.finalCode(), st.aborted.why)
}

// onCancelled is the caller's CANCEL; the stack has answered it 200 and the
// INVITE 487 already.
func (c *call) onCancelled() {
	c.requestAbort(abortRequest{party: cdr.HangupCaller, why: "cancel", final: 487})
}
