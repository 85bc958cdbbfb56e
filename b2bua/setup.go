package b2bua

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"callpath/cdr"
	"callpath/routing"
	"callpath/sipstack"
)

// setup drives a call from its outgoing INVITEs until one is answered or
// all fail. A plan may ring several branches at once (FORK: first 2xx wins,
// the others get CANCEL) and start one later (FALLBACK: on busy or no
// answer). It is event-driven: the branches' responses, the caller's
// CANCEL, an abort (BYE on the early dialog, drain) and the timers all
// arrive as calls on whatever goroutine noticed them (mostly a socket's read
// loop), so no goroutine waits through the ringing.
type setup struct {
	srv    *Server
	c      *call
	req    *sip.Request // the caller's INVITE
	tx     sip.ServerTransaction
	maxFwd int // Max-Forwards of our INVITEs

	mu         sync.Mutex
	branches   []*branch
	winner     *branch
	over       bool
	aborted    *abortRequest
	earlyMedia *branch // the branch whose provisional SDP the caller got
	best       *finalResponse
	noAnswer   *time.Timer
	giveUp     *time.Timer
}

// branchState is how far one outgoing INVITE has got.
type branchState int

const (
	branchResolving  branchState = iota // its next hop is being resolved or dialled
	branchCalling                       // INVITE sent, no response yet
	branchProceeding                    // a provisional response came: CANCEL is allowed
	branchDone                          // final response, failure, or never sent
)

// branch is one outgoing INVITE of a setup. Its fields are guarded by the
// setup's mutex.
type branch struct {
	st    *setup
	route routing.Branch
	leg   *leg
	out   *sip.Request
	ctr   sip.ClientTransaction

	state        branchState
	cancelWanted bool // CANCEL as soon as RFC 3261 §9.1 allows (or do not send at all)
	abandoned    bool // given up for its fallback: its failure no longer counts
	fallback     *time.Timer
	early        map[string]*earlyDialog // by To tag: early dialogs sending reliable provisionals (prack.go)
}

// finalResponse is a branch's failure, kept to answer the caller once every
// branch has failed.
type finalResponse struct {
	code   int
	reason string
	res    *sip.Response // nil when no response came (timeout, transport error)
}

// startSetup sends the outgoing INVITEs of the plan; the caller has its 100
// already.
func (s *Server) startSetup(c *call, req *sip.Request, tx sip.ServerTransaction, branches []routing.Branch, maxFwd int) {
	st := &setup{srv: s, c: c, req: req, tx: tx, maxFwd: maxFwd}
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
	for _, b := range branches {
		st.startBranch(b, len(branches) == 1)
	}
	if st.settle() {
		return
	}
	st.noAnswer = time.AfterFunc(s.cfg.NoAnswerTimeout, func() {
		st.abort(abortRequest{code: 408, reason: "Request Timeout", party: cdr.HangupGateway, why: "no answer"})
	})
}

// startBranch builds and sends one outgoing INVITE; only says whether it is
// the only branch ringing (it is then leg b at once, so that early-dialog
// requests find their peer). Called with st.mu held.
func (st *setup) startBranch(route routing.Branch, only bool) {
	s, c := st.srv, st.c
	br := &branch{st: st, route: route}
	st.branches = append(st.branches, br)
	l, out, err := s.newOutgoingInvite(c, st.req, route, st.maxFwd)
	if err != nil {
		c.logger().WithError(err).WithField("target", route.Target.URI).Warn("cannot build outgoing INVITE")
		br.state = branchDone
		st.record(&finalResponse{code: 500, reason: "Server Internal Error"})
		return
	}
	br.leg, br.out = l, out
	c.addLeg(l, only)
	if route.IsLoop() {
		s.expectLoop(c, route, out, st.maxFwd)
	}
	if route.Fallback != nil {
		br.fallback = time.AfterFunc(route.FallbackAfter, func() { st.onFallbackTimer(br) })
	}
	if needsResolve(out) {
		br.state = branchResolving
		go st.resolveAndSend(br)
		return
	}
	st.send(br)
}

// resolveAndSend finds the next hop of a branch off the read loop (DNS,
// a TLS handshake) and then sends its INVITE, unless the setup gave the
// branch up meanwhile.
func (st *setup) resolveAndSend(br *branch) {
	s := st.srv
	tlsCfg := s.cfg.ClientTLS
	if br.route.Kind == routing.ToTAS && s.cfg.TASClientTLS != nil {
		tlsCfg = s.cfg.TASClientTLS
	}
	ctx, cancel := context.WithTimeout(s.ctx, 64*s.cfg.T1)
	dest, err := s.resolveTarget(ctx, br.out, tlsCfg)
	cancel()
	if err == nil {
		br.out.SetDestination(dest)
		br.leg.mu.Lock()
		br.leg.flow = dest // the dialog's requests reuse the verified connection
		br.leg.mu.Unlock()
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case br.cancelWanted || st.over:
		br.state = branchDone
	case err != nil:
		st.c.logger().WithError(err).WithField("target", br.route.Target.URI).Info("next hop unreachable")
		br.state = branchDone
		st.fail(br, &finalResponse{code: 503, reason: "Service Unavailable"})
		return
	default:
		st.send(br)
	}
	st.settle()
}

// send starts the INVITE transaction of a branch. Called with st.mu held.
func (st *setup) send(br *branch) {
	s := st.srv
	br.leg.mu.Lock()
	br.leg.lastInvite = br.out // a 2xx after the transaction is gone is still ACKed and hung up
	br.leg.mu.Unlock()
	ctr, err := s.stack.RequestFunc(s.ctx, br.out, sipstack.Callbacks{Response: br.onResponse, Failure: br.onFailure})
	if err != nil {
		st.c.logger().WithError(err).Info("outgoing INVITE failed")
		br.state = branchDone
		st.fail(br, &finalResponse{code: 503, reason: "Service Unavailable"})
		return
	}
	s.metrics.Request("INVITE", "out")
	br.ctr = ctr
	br.state = branchCalling
}

// settle ends the setup when no branch can still answer: with the abort's
// outcome, or with the best failure relayed to the caller. It reports
// whether the setup is over. Called with st.mu held.
func (st *setup) settle() bool {
	if st.over {
		return true
	}
	for _, br := range st.branches {
		if br.state != branchDone {
			return false
		}
	}
	if a := st.aborted; a != nil {
		st.finish(a.party, a.finalCode(), a.why)
		return true
	}
	s, c := st.srv, st.c
	best := st.best
	if best == nil {
		best = &finalResponse{code: 500, reason: "Server Internal Error"}
	}
	if best.res == nil {
		s.reply(st.tx, st.req, best.code, best.reason)
		st.finish(cdr.HangupGateway, best.code, "no response from next hop")
		return true
	}
	code, reason := mapFinalResponse(best.code, best.reason)
	s.relayResponse(c, c.a, st.tx, st.req, best.res, code, reason)
	st.finish(cdr.HangupCallee, code, strconv.Itoa(best.code)+" "+best.reason)
	return true
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
	if st.c.reliable != nil {
		st.c.reliable.stop() // the caller has its final response, or is about to
	}
	for _, t := range []*time.Timer{st.noAnswer, st.giveUp} {
		if t != nil {
			t.Stop()
		}
	}
	for _, br := range st.branches {
		br.stopFallback()
	}
	st.c.mu.Lock()
	if st.c.setup == st {
		st.c.setup = nil
	}
	st.c.mu.Unlock()
	st.c.endInvite()
}

func (br *branch) stopFallback() {
	if br.fallback != nil {
		br.fallback.Stop()
	}
}

// onResponse handles a response to a branch's INVITE. A 2xx may overtake a
// provisional response on another read loop: once the setup is over, late
// provisionals are dropped.
func (br *branch) onResponse(res *sip.Response) {
	st := br.st
	s, c := st.srv, st.c
	code := res.StatusCode
	s.metrics.Response("INVITE", code, "in")
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case code < 200:
		if br.state == branchCalling {
			br.state = branchProceeding
		}
		if br.cancelWanted && br.state == branchProceeding {
			br.cancelWanted = false
			s.cancelOutgoing(br.out)
		}
		// PRACKed even when it will not be relayed: the callee
		// retransmits it until it is, and then gives up on the call.
		if rseq, ok := reliableRSeq(res); ok && !br.acknowledgeReliable(res, rseq) {
			return
		}
		if st.over || st.aborted != nil || br.abandoned || code == 100 {
			return
		}
		if len(st.branches) == 1 {
			c.learnSessionID(br.leg, res)
		}
		st.relayProvisional(br, res)
	case code < 300:
		br.state = branchDone
		if st.over || st.aborted != nil {
			// Answered after we gave up, or a second answer: confirm and
			// hang up at once (RFC 3261 §15).
			if br != st.winner {
				s.ackAndBye(c, br.leg, br.out, res)
			}
			st.settle()
			return
		}
		st.win(br, res)
	default:
		br.state = branchDone
		br.stopFallback()
		if st.over || st.aborted != nil || br.abandoned {
			st.settle()
			return
		}
		st.fail(br, &finalResponse{code: code, reason: res.Reason, res: res})
	}
}

// onFailure handles the end of a branch's INVITE transaction without a
// final response: a timeout or a transport error.
func (br *branch) onFailure(err error) {
	st := br.st
	st.mu.Lock()
	defer st.mu.Unlock()
	br.state = branchDone
	br.stopFallback()
	if st.over || st.aborted != nil || br.abandoned {
		st.settle()
		return
	}
	code, reason := st.srv.failureResponse("INVITE", err)
	st.fail(br, &finalResponse{code: code, reason: reason})
}

// fail takes a branch's failure: its fallback starts on busy or no answer
// (the failure is kept: should the fallback fail too, the caller hears
// busy rather than the fallback's error); a 6xx ends the call at once (RFC
// 3261 §16.7: global failure, the other branches are cancelled); otherwise
// the caller is answered once every branch has failed. Called with st.mu
// held.
func (st *setup) fail(br *branch, f *finalResponse) {
	st.record(f)
	if br.route.Fallback != nil && fallbackCode(f.code) {
		st.startFallback(br)
		st.settle()
		return
	}
	if f.code >= 600 && f.res != nil {
		s, c := st.srv, st.c
		code, reason := mapFinalResponse(f.code, f.reason)
		s.relayResponse(c, c.a, st.tx, st.req, f.res, code, reason)
		st.abortLocked(abortRequest{final: code, party: cdr.HangupCallee, why: strconv.Itoa(f.code) + " " + f.reason})
		return
	}
	st.settle()
}

// fallbackCode says whether a destination's final response counts as busy
// (486, 600) or not answered (408, 480; also our own Timer B, which maps to
// 408) for FALLBACK. An unreachable next hop (503) is neither.
func fallbackCode(code int) bool {
	return code == 486 || code == 600 || code == 408 || code == 480
}

// onFallbackTimer gives up on a destination that has not answered within
// the registration's fallback time and rings its fallback.
func (st *setup) onFallbackTimer(br *branch) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.over || st.aborted != nil || br.state == branchDone || br.abandoned {
		return
	}
	br.abandoned = true
	st.cancelBranch(br)
	st.startFallback(br)
}

// startFallback rings the fallback of br. Called with st.mu held.
func (st *setup) startFallback(br *branch) {
	br.stopFallback()
	fb := *br.route.Fallback
	st.startBranch(fb, false)
	if nb := st.branches[len(st.branches)-1]; nb.leg != nil {
		st.c.setOutgoing(nb.leg, 0)
	}
}

// record keeps the best failure to answer the caller with (RFC 3261 §16.7:
// a 6xx, else the lowest class). Called with st.mu held.
func (st *setup) record(f *finalResponse) {
	b := st.best
	switch {
	case b == nil:
	case b.code >= 600:
		return
	case f.code >= 600:
	case f.code/100 >= b.code/100:
		return
	}
	st.best = f
}

// win makes br the answered leg: the other branches get CANCEL and the 2xx
// goes to the caller. Called with st.mu held.
func (st *setup) win(br *branch, res *sip.Response) {
	st.winner = br
	for _, other := range st.branches {
		if other != br && other.state != branchDone {
			other.abandoned = true
			st.cancelBranch(other)
		}
	}
	st.c.setOutgoing(br.leg, br.route.Kind)
	st.c.learnSessionID(br.leg, res)
	st.end()
	st.srv.answer(st.c, st.req, st.tx, br.out, br.withEarlyAnswer(res))
}

// cancelBranch sends CANCEL for a branch as soon as RFC 3261 §9.1 allows:
// now after a provisional response, else when one comes; a branch still
// resolving is never sent. Called with st.mu held.
func (st *setup) cancelBranch(br *branch) {
	switch br.state {
	case branchProceeding:
		st.srv.cancelOutgoing(br.out)
	case branchCalling, branchResolving:
		br.cancelWanted = true
	}
}

// relayProvisional passes a branch's provisional response to the caller.
// There is one early dialog toward the caller whichever branch rings, so
// only the first branch that sends a body (early media) gets to show it;
// the others' provisional responses go without. Called with st.mu held.
func (st *setup) relayProvisional(br *branch, res *sip.Response) {
	s, c := st.srv, st.c
	if len(res.Body()) > 0 && st.earlyMedia == nil {
		st.earlyMedia = br
	}
	var out *sip.Response
	if len(res.Body()) == 0 || st.earlyMedia == br {
		out = relayedResponse(c, c.a, st.req, res, res.StatusCode, res.Reason)
	} else {
		out = sip.NewResponseFromRequest(st.req, res.StatusCode, res.Reason, nil)
		out.AppendHeader(c.a.contact)
		out.AppendHeader(allowHeader)
		c.setSessionID(c.a, out)
	}
	if c.reliable != nil {
		c.reliable.send(out)
		return
	}
	s.respond(st.tx, st.req, out)
}

// abort gives up on the call: the caller gets a.code (unless it has its
// final response already), every branch a CANCEL as soon as RFC 3261 §9.1
// allows one, and their final responses are awaited for 64*T1 at most.
// It reports false when the call was answered first.
func (st *setup) abort(a abortRequest) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.over {
		state := st.c.getState()
		return state != stateAnswered && state != stateConfirmed
	}
	if st.aborted != nil {
		return true
	}
	if a.code != 0 {
		st.srv.reply(st.tx, st.req, a.code, a.reason)
	}
	st.abortLocked(a)
	return true
}

// abortLocked is abort once the caller has its answer. Called with st.mu
// held.
func (st *setup) abortLocked(a abortRequest) {
	st.aborted = &a
	for _, br := range st.branches {
		br.stopFallback()
		if br.state != branchDone {
			st.cancelBranch(br)
		}
	}
	if st.settle() {
		return
	}
	st.giveUp = time.AfterFunc(64*st.srv.cfg.T1, st.onGiveUp)
}

// onGiveUp ends an aborted setup whose branches never all sent a final
// response.
func (st *setup) onGiveUp() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.over {
		return
	}
	for _, br := range st.branches {
		if br.state != branchDone && br.ctr != nil {
			br.ctr.Terminate()
		}
		br.state = branchDone
	}
	st.settle()
}

// onCancelled is the caller's CANCEL; the stack has answered it 200 and the
// INVITE 487 already.
func (c *call) onCancelled() {
	c.requestAbort(abortRequest{party: cdr.HangupCaller, why: "cancel", final: 487})
}
