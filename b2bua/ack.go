package b2bua

import (
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"callpath/cdr"
)

// pendingAck is a 2xx to an INVITE that callpath relayed on one leg (the
// "waiting" leg) and whose ACK it must relay to the leg that sent the 2xx
// (the "peer" leg). 2xx and ACK travel end to end in RFC 3261 (§13.3.1.4,
// §17.1.1.3): the transactions do not retransmit them, the UAs do, so this is
// where callpath retransmits its own 2xx until the ACK comes and re-sends its
// ACK whenever the peer retransmits its 2xx.
type pendingAck struct {
	srv     *Server
	call    *call
	waiting *leg
	cseq    uint32 // CSeq of the INVITE on the waiting leg
	tx      sip.ServerTransaction
	peer    *leg
	peerInv *sip.Request // the INVITE we sent on the peer leg

	mu       sync.Mutex
	res      *sip.Response // our 2xx on the waiting leg
	done     bool
	timer    *time.Timer
	interval time.Duration
	deadline time.Time
}

func (s *Server) newPendingAck(c *call, waiting *leg, tx sip.ServerTransaction, req *sip.Request, peer *leg, peerInv *sip.Request) *pendingAck {
	pa := &pendingAck{srv: s, call: c, waiting: waiting, cseq: req.CSeq().SeqNo, tx: tx, peer: peer, peerInv: peerInv}
	waiting.mu.Lock()
	waiting.pendingAck = pa
	waiting.mu.Unlock()
	peer.mu.Lock()
	peer.lastInvite = peerInv
	peer.mu.Unlock()
	return pa
}

// start arms the retransmission timer (unreliable transports) and the ACK
// timeout of 64*T1 (RFC 3261 §13.3.1.4).
func (pa *pendingAck) start(res *sip.Response) {
	pa.mu.Lock()
	defer pa.mu.Unlock()
	if pa.done {
		return
	}
	pa.res = res
	t1 := pa.srv.cfg.T1
	pa.deadline = time.Now().Add(64 * t1)
	if sip.IsReliable(pa.waiting.transport) {
		pa.timer = time.AfterFunc(64*t1, pa.tick)
		return
	}
	pa.interval = t1
	pa.timer = time.AfterFunc(t1, pa.tick)
}

func (pa *pendingAck) tick() {
	pa.mu.Lock()
	if pa.done {
		pa.mu.Unlock()
		return
	}
	if !time.Now().Before(pa.deadline) {
		pa.done = true
		pa.mu.Unlock()
		pa.srv.onAckTimeout(pa)
		return
	}
	res := pa.res
	pa.interval *= 2
	if t2 := pa.srv.cfg.T2; pa.interval > t2 {
		pa.interval = t2
	}
	pa.timer.Reset(pa.interval)
	pa.mu.Unlock()
	if err := pa.tx.Respond(res); err == nil {
		pa.srv.metrics.Response("INVITE", res.StatusCode, "out")
	}
}

// acknowledge stops the timers and sends the ACK on the peer leg; body is
// the caller's ACK body (the answer, for an offerless INVITE).
func (pa *pendingAck) acknowledge(from *sip.Request) {
	pa.mu.Lock()
	if pa.done {
		pa.mu.Unlock()
		return
	}
	pa.done = true
	pa.res = nil // kept alive with the INVITE transaction; no longer needed
	if pa.timer != nil {
		pa.timer.Stop()
	}
	pa.mu.Unlock()
	pa.sendPeerAck(from)
}

func (pa *pendingAck) sendPeerAck(from *sip.Request) {
	s := pa.srv
	ack := pa.peer.newRequest(sip.ACK, pa.peerInv.CSeq().SeqNo)
	if from != nil && len(from.Body()) > 0 {
		copyHeaders(ack, from, passedHeaders)
		ack.SetBody(from.Body())
	}
	pa.call.setSessionID(pa.peer, ack)
	s.prepare(ack, s.cfg.MaxForwards)
	// Stored before it is sent: the peer may retransmit its 2xx the moment
	// the ACK reaches it, and onUnmatchedResponse must find the ACK.
	// Kept for 64*T1, the wait for other 2xx of RFC 3261 §13.2.2.4 (RFC
	// 6026's Timer M), then let go: an ACK and an INVITE held for the
	// whole call were half of an established call's memory. The call's
	// end stops the timer (forgetAcks), so that a short call's requests
	// do not outlive it.
	peer := pa.peer
	peer.mu.Lock()
	peer.lastAck = ack
	if peer.ackForget != nil {
		peer.ackForget.Stop()
	}
	peer.ackForget = time.AfterFunc(64*s.cfg.T1, func() { peer.forgetAck(ack) })
	peer.mu.Unlock()
	if err := s.sendAck(ack); err != nil {
		pa.call.logger().WithError(err).Info("sending ACK failed")
	}
}

// forgetAck drops the leg's last ACK and its INVITE unless a later ACK
// (of a re-INVITE) has replaced it; nil: whatever there is (the call
// ended: no 2xx can reach it any more, it has left the call table).
func (l *leg) forgetAck(ack *sip.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ack == nil || l.lastAck == ack {
		l.lastAck, l.lastInvite = nil, nil
		if l.ackForget != nil {
			l.ackForget.Stop()
			l.ackForget = nil
		}
	}
}

// takePendingAck returns and clears the leg's pending 2xx if cseq is its
// INVITE's CSeq.
func (l *leg) takePendingAck(cseq uint32) *pendingAck {
	l.mu.Lock()
	defer l.mu.Unlock()
	pa := l.pendingAck
	if pa == nil || pa.cseq != cseq {
		return nil
	}
	l.pendingAck = nil
	return pa
}

// onAck relays an ACK for a 2xx. ACKs for non-2xx responses never get here:
// the server transaction absorbs them. It runs on the read loop (an ACK for a
// 2xx has no transaction): one lookup and one send.
func (s *Server) onAck(req *sip.Request, _ sip.ServerTransaction) {
	s.metrics.Request("ACK", "in")
	if validateRequest(req) != "" {
		return // nothing can be answered to an ACK
	}
	l := s.lookup(req)
	if l == nil {
		return
	}
	s.relayAck(l, req) // false: a retransmitted ACK, already relayed
}

// relayAck relays the ACK of a 2xx that leg l is waiting for to the peer
// leg; false when l waits for no ACK with that CSeq.
func (s *Server) relayAck(l *leg, req *sip.Request) bool {
	pa := l.takePendingAck(req.CSeq().SeqNo)
	if pa == nil {
		return false
	}
	pa.acknowledge(req)
	if l.call.getState() == stateAnswered {
		l.call.setState(stateConfirmed)
		s.startKeepalive(l.call)
	}
	return true
}

// onUnmatchedResponse handles a 2xx to one of our INVITEs after the first:
// a retransmission (the callee missed our ACK; RFC 6026's Timer M lasts
// 64*T1, longer than the transaction lingers) gets the ACK again, a 2xx
// from another fork downstream is confirmed and hung up (RFC 3261 §13.2.2.4),
// for 64*T1 after our ACK (sendPeerAck). The lingering INVITE transaction
// keeps none of the call: the leg is found by its dialog.
func (s *Server) onUnmatchedResponse(res *sip.Response) {
	cseq, from, to, callID := res.CSeq(), res.From(), res.To(), res.CallID()
	if res.StatusCode < 200 || res.StatusCode >= 300 || cseq == nil || cseq.MethodName != sip.INVITE || from == nil || to == nil || callID == nil {
		return
	}
	l := s.calls.get(dialogKey(callID.Value(), tagOf(from.Params)))
	if l == nil {
		return
	}
	s.metrics.Response("INVITE", res.StatusCode, "in")
	l.mu.Lock()
	ack, inv, remoteTag := l.lastAck, l.lastInvite, l.remoteTag
	l.mu.Unlock()
	switch {
	case tagOf(to.Params) != remoteTag:
		if inv != nil && inv.CSeq().SeqNo == cseq.SeqNo {
			s.ackAndBye(l.call, l, inv, res)
		}
	case ack != nil && ack.CSeq().SeqNo == cseq.SeqNo:
		_ = s.sendAck(ack)
	}
}

// onAckTimeout ends a call whose 2xx was never acknowledged: the callee
// gets its ACK and a BYE, the caller a BYE (RFC 3261 §13.3.1.4).
func (s *Server) onAckTimeout(pa *pendingAck) {
	c := pa.call
	pa.waiting.takePendingAck(pa.cseq)
	pa.sendPeerAck(nil)
	c.logger().Info("no ACK for 2xx: hanging up")
	if c.getState() == stateAnswered && pa.waiting == c.a {
		c.end(cdr.HangupGateway, 408, "no ACK")
	} else {
		c.end(cdr.HangupGateway, 200, "no ACK for re-INVITE")
	}
	s.byeLeg(c, c.a, nil)
	s.byeLeg(c, c.outgoing(), nil)
}

// flushPendingAck acknowledges on the peer leg any 2xx still waiting for an
// ACK on leg l, so that the peer is not left retransmitting when the call
// ends before the ACK came.
func (s *Server) flushPendingAck(l *leg) {
	if l == nil {
		return
	}
	l.mu.Lock()
	pa := l.pendingAck
	l.pendingAck = nil
	l.mu.Unlock()
	if pa != nil {
		pa.acknowledge(nil)
	}
}

// ackAndBye confirms and at once ends a dialog created by a 2xx we do not
// want (answered after CANCEL, a losing fork's 2xx, or a second 2xx from
// downstream): RFC 3261 §15. l is the leg inv was sent on.
func (s *Server) ackAndBye(c *call, l *leg, inv *sip.Request, res *sip.Response) {
	d := &leg{
		call: c, index: l.index, side: sideUAC, callID: l.callID, localTag: l.localTag,
		local: l.local, localName: l.localName, remote: l.remote, remoteNm: l.remoteNm,
		transport: l.transport, contact: l.contact,
		remoteTag: tagOf(res.To().Params), remoteTarget: *inv.Recipient.Clone(), localCSeq: inv.CSeq().SeqNo,
	}
	d.learnTarget(res, true, true)
	ack := d.newRequest(sip.ACK, inv.CSeq().SeqNo)
	c.setSessionID(l, ack)
	s.prepare(ack, s.cfg.MaxForwards)
	_ = s.sendAck(ack)
	s.byeLeg(c, d, nil)
}
