package b2bua

import (
	"errors"

	"github.com/emiago/sipgo/sip"

	"callpath/cdr"
)

// lookup finds the leg an in-dialog request belongs to: its Call-ID and our
// tag, which the peer puts in To.
func (s *Server) lookup(req *sip.Request) *leg {
	to := req.To()
	if to == nil || req.CallID() == nil {
		return nil
	}
	tag := tagOf(to.Params)
	if tag == "" {
		return nil
	}
	return s.calls.get(dialogKey(req.CallID().Value(), tag))
}

// dialogOf finds the leg of an in-dialog request and checks its CSeq; when
// it returns nil the request has been answered (481, or 500 for a CSeq out
// of order, RFC 3261 §12.2.2).
func (s *Server) dialogOf(req *sip.Request, tx sip.ServerTransaction) *leg {
	l := s.lookup(req)
	if l == nil {
		s.reply(tx, req, 481, "Call/Transaction Does Not Exist")
		return nil
	}
	if !l.acceptRemoteCSeq(req.CSeq().SeqNo) {
		s.reply(tx, req, 500, "Server Internal Error", sip.NewHeader("Retry-After", "1"))
		return nil
	}
	return l
}

// onInDialog is the entry point of UPDATE, INFO, MESSAGE and NOTIFY.
func (s *Server) onInDialog(req *sip.Request, tx sip.ServerTransaction) {
	s.metrics.Request(string(req.Method), "in")
	if why := validateRequest(req); why != "" {
		s.reply(tx, req, 400, why)
		return
	}
	if tagOf(req.To().Params) == "" {
		// Out of dialog: callpath is no endpoint for these.
		s.reply(tx, req, 403, "Forbidden")
		return
	}
	s.relayInDialog(req, tx)
}

// relayInDialog relays a mid-dialog request (re-INVITE, UPDATE, INFO, …) to
// the other leg as a new request of that leg's dialog, and its response back.
func (s *Server) relayInDialog(req *sip.Request, tx sip.ServerTransaction) {
	l := s.dialogOf(req, tx)
	if l == nil {
		return
	}
	c := l.call
	mf := maxForwards(req, s.cfg.MaxForwards)
	if mf <= 0 {
		s.reply(tx, req, 483, "Too Many Hops")
		return
	}
	if req.IsInvite() {
		if !c.beginInvite() {
			s.reply(tx, req, 491, "Request Pending")
			return
		}
		defer c.endInvite()
	}
	peer := c.peer(l)
	if peer == nil {
		s.reply(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	if req.IsInvite() || req.Method == sip.UPDATE {
		l.learnTarget(req, false, false) // target refresh, RFC 3261 §12.2.2
	}
	c.learnSessionID(l, req)

	out := peer.newRequest(req.Method, peer.nextCSeq())
	copyHeaders(out, req, passedHeaders)
	c.setSessionID(peer, out)
	out.SetBody(req.Body())
	s.prepare(out, mf-1)
	ctr, err := s.send(s.ctx, out)
	if err != nil {
		s.reply(tx, req, 503, "Service Unavailable")
		return
	}
	// Left to end on its own timers, like the initial INVITE's.
	method := string(req.Method)
	for {
		select {
		case res := <-ctr.Responses():
			s.metrics.Response(method, res.StatusCode, "in")
			c.learnSessionID(peer, res)
			if res.StatusCode < 200 {
				if req.IsInvite() && res.StatusCode > 100 {
					s.relayResponse(c, l, tx, req, res, res.StatusCode, res.Reason)
				}
				continue
			}
			if res.StatusCode < 300 && (req.IsInvite() || req.Method == sip.UPDATE) {
				peer.learnTarget(res, false, false)
			}
			if req.IsInvite() && res.StatusCode < 300 {
				pa := s.newPendingAck(c, l, tx, req, peer, out)
				if ct, ok := ctr.(*sip.ClientTx); ok {
					ct.OnRetransmission(func(r *sip.Response) { s.onPeer2xxRetransmission(c, pa, r) })
				}
				pa.start(s.relayResponse(c, l, tx, req, res, res.StatusCode, res.Reason))
				return
			}
			code, reason := mapFinalResponse(res.StatusCode, res.Reason)
			s.relayResponse(c, l, tx, req, res, code, reason)
			if res.StatusCode == 481 {
				// RFC 5057 §5.1: the peer's dialog is gone, so is the call.
				party := cdr.HangupCallee
				if peer == c.a {
					party = cdr.HangupCaller
				}
				c.end(party, 200, "dialog gone")
				go s.byeLeg(c, l)
			}
			return
		case <-ctr.Done():
			code, reason := 503, "Service Unavailable"
			if errors.Is(ctr.Err(), sip.ErrTransactionTimeout) {
				s.metrics.TransactionTimeout(method)
				code, reason = 408, "Request Timeout"
			}
			s.reply(tx, req, code, reason)
			return
		}
	}
}

// onBye ends the call: 200 to the sender, BYE to the other leg. A BYE on an
// early dialog (RFC 3261 §15) ends the call like a CANCEL.
func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	s.metrics.Request("BYE", "in")
	if why := validateRequest(req); why != "" {
		s.reply(tx, req, 400, why)
		return
	}
	l := s.dialogOf(req, tx)
	if l == nil {
		return
	}
	c := l.call
	c.learnSessionID(l, req)
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	c.setSessionID(l, res)
	s.respond(tx, req, res)

	party := cdr.HangupCaller
	if l != c.a {
		party = cdr.HangupCallee
	}
	if c.requestAbort(abortRequest{code: 487, reason: "Request Terminated", party: party, why: "bye"}) {
		return
	}
	peer := c.peer(l)
	s.flushPendingAck(c.a)
	s.flushPendingAck(c.b)
	c.end(party, 200, "bye")
	s.byeLeg(c, peer)
}

// byeLeg sends BYE on a leg and waits for its final response.
func (s *Server) byeLeg(c *call, l *leg) {
	if l == nil {
		return
	}
	req := l.newRequest(sip.BYE, l.nextCSeq())
	c.setSessionID(l, req)
	s.prepare(req, s.cfg.MaxForwards)
	s.finish(req)
}

// finish sends a non-INVITE request and waits for its final response, for
// requests whose outcome changes nothing (BYE, CANCEL) but is counted.
func (s *Server) finish(req *sip.Request) {
	ctr, err := s.send(s.ctx, req)
	if err != nil {
		return
	}
	method := string(req.Method)
	for {
		select {
		case res := <-ctr.Responses():
			s.metrics.Response(method, res.StatusCode, "in")
			if res.StatusCode >= 200 {
				return
			}
		case <-ctr.Done():
			if errors.Is(ctr.Err(), sip.ErrTransactionTimeout) {
				s.metrics.TransactionTimeout(method)
			}
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// cancelOutgoing sends CANCEL for an INVITE we sent (RFC 3261 §9.1): same
// Request-URI, Call-ID, From, To, CSeq number and top Via branch.
func (s *Server) cancelOutgoing(inv *sip.Request) {
	req := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	req.AppendHeader(inv.Via().Clone())
	for _, h := range inv.GetHeaders("Route") {
		req.AppendHeader(sip.HeaderClone(h))
	}
	req.AppendHeader(sip.HeaderClone(inv.From()))
	req.AppendHeader(sip.HeaderClone(inv.To()))
	req.AppendHeader(sip.HeaderClone(inv.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(uint32(s.cfg.MaxForwards))
	req.AppendHeader(&mf)
	req.SetBody(nil)
	req.SetTransport(inv.Transport())
	req.Laddr = inv.Laddr
	if d := inv.Destination(); d != "" {
		req.SetDestination(d)
	}
	go s.finish(req)
}

// onCancel answers a CANCEL that matched no INVITE transaction (sipgo
// matches and answers the others itself): RFC 3261 §9.2.
func (s *Server) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	s.metrics.Request("CANCEL", "in")
	s.reply(tx, req, 481, "Call/Transaction Does Not Exist")
}

// onOptions answers keepalives and capability queries ourselves.
func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	s.metrics.Request("OPTIONS", "in")
	if why := validateRequest(req); why != "" {
		s.reply(tx, req, 400, why)
		return
	}
	if tagOf(req.To().Params) != "" && s.lookup(req) == nil {
		s.reply(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	s.reply(tx, req, 200, "OK",
		allowHeader,
		sip.NewHeader("Accept", "application/sdp"),
		sip.NewHeader("Accept-Language", "en"))
}

// onNoRoute answers methods callpath does not handle (RFC 3261 §8.2.1: 405
// with Allow).
func (s *Server) onNoRoute(req *sip.Request, tx sip.ServerTransaction) {
	s.metrics.Request(string(req.Method), "in")
	s.reply(tx, req, 405, "Method Not Allowed", allowHeader)
}
