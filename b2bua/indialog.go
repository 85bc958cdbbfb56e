package b2bua

import (
	"errors"
	"sync"

	"github.com/emiago/sipgo/sip"

	"callpath/cdr"
	"callpath/sipstack"
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

// dialogRequest counts a request that only makes sense in a dialog (BYE,
// PRACK) and finds its leg; nil when it has been answered (400 for a
// malformed one, or as dialogOf).
func (s *Server) dialogRequest(req *sip.Request, tx sip.ServerTransaction) *leg {
	s.metrics.Request(string(req.Method), "in")
	if why := validateRequest(req); why != "" {
		s.reply(tx, req, 400, why)
		return nil
	}
	return s.dialogOf(req, tx)
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
	if req.IsInvite() && !c.beginInvite() {
		s.reply(tx, req, 491, "Request Pending")
		return
	}
	peer := c.peer(l)
	if peer == nil {
		s.reply(tx, req, 481, "Call/Transaction Does Not Exist")
		if req.IsInvite() {
			c.endInvite()
		}
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
	r := &inDialogRelay{srv: s, c: c, from: l, to: peer, req: req, tx: tx, out: out}
	r.mu.Lock()
	defer r.mu.Unlock()
	ctr, err := s.stack.RequestFunc(s.ctx, out, sipstack.Callbacks{Response: r.onResponse, Failure: r.onFailure})
	if err != nil {
		s.reply(tx, req, 503, "Service Unavailable")
		r.end()
		return
	}
	s.metrics.Request(string(out.Method), "out")
	r.ctr = ctr
}

// inDialogRelay carries one mid-dialog request across the call: our request
// on the other leg, and its responses back. Like setup, it runs on callbacks.
type inDialogRelay struct {
	srv      *Server
	c        *call
	from, to *leg
	req      *sip.Request // as received on leg from
	tx       sip.ServerTransaction
	out      *sip.Request // as sent on leg to

	mu   sync.Mutex
	ctr  sip.ClientTransaction
	over bool
}

// end frees the call for the next re-INVITE. Called with r.mu held.
func (r *inDialogRelay) end() {
	r.over = true
	if r.req.IsInvite() {
		r.c.endInvite()
	}
}

func (r *inDialogRelay) onResponse(res *sip.Response) {
	s, c, req := r.srv, r.c, r.req
	s.metrics.Response(string(req.Method), res.StatusCode, "in")
	c.learnSessionID(r.to, res)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over {
		return
	}
	if res.StatusCode < 200 {
		if req.IsInvite() && res.StatusCode > 100 {
			s.relayResponse(c, r.from, r.tx, req, res, res.StatusCode, res.Reason)
		}
		return
	}
	r.end()
	if res.StatusCode < 300 && (req.IsInvite() || req.Method == sip.UPDATE) {
		r.to.learnTarget(res, false, false)
	}
	if req.IsInvite() && res.StatusCode < 300 {
		pa := s.newPendingAck(c, r.from, r.tx, req, r.to, r.out)
		pa.start(s.relayResponse(c, r.from, r.tx, req, res, res.StatusCode, res.Reason))
		return
	}
	code, reason := mapFinalResponse(res.StatusCode, res.Reason)
	s.relayResponse(c, r.from, r.tx, req, res, code, reason)
	if res.StatusCode == 481 {
		// RFC 5057 §5.1: the peer's dialog is gone, so is the call.
		party := cdr.HangupCallee
		if r.to == c.a {
			party = cdr.HangupCaller
		}
		c.end(party, 200, "dialog gone")
		s.byeLeg(c, r.from, nil)
	}
}

func (r *inDialogRelay) onFailure(err error) {
	s := r.srv
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over {
		return
	}
	r.end()
	code, reason := s.failureResponse(string(r.req.Method), err)
	s.reply(r.tx, r.req, code, reason)
}

// onBye ends the call: 200 to the sender, BYE to the other leg. A BYE on an
// early dialog (RFC 3261 §15) ends the call like a CANCEL.
func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	l := s.dialogRequest(req, tx)
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
	s.flushPendingAck(c.outgoing())
	c.end(party, 200, "bye")
	s.byeLeg(c, peer, nil)
}

// failureResponse is what the other leg is told when a request we relayed
// got no final response: 408 after a timeout (counted), 503 after a
// transport error.
func (s *Server) failureResponse(method string, err error) (int, string) {
	if errors.Is(err, sip.ErrTransactionTimeout) {
		s.metrics.TransactionTimeout(method)
		return 408, "Request Timeout"
	}
	return 503, "Service Unavailable"
}

// byeLeg sends BYE on a leg; done (if not nil) is called once its outcome
// is known.
func (s *Server) byeLeg(c *call, l *leg, done func()) {
	if l == nil {
		if done != nil {
			done()
		}
		return
	}
	req := l.newRequest(sip.BYE, l.nextCSeq())
	c.setSessionID(l, req)
	s.prepare(req, s.cfg.MaxForwards)
	s.finish(req, done)
}

// finish sends a non-INVITE request whose outcome changes nothing (BYE,
// CANCEL) but is counted; done (if not nil) is called once it is known.
func (s *Server) finish(req *sip.Request, done func()) {
	method := string(req.Method)
	var once sync.Once
	end := func() {
		if done != nil {
			once.Do(done)
		}
	}
	_, err := s.stack.RequestFunc(s.ctx, req, sipstack.Callbacks{
		Response: func(res *sip.Response) {
			s.metrics.Response(method, res.StatusCode, "in")
			if res.StatusCode >= 200 {
				end()
			}
		},
		Failure: func(err error) {
			s.failureResponse(method, err)
			end()
		},
	})
	if err != nil {
		end()
		return
	}
	s.metrics.Request(method, "out")
}

// cancelOutgoing sends CANCEL for an INVITE we sent (RFC 3261 §9.1): same
// Request-URI, Call-ID, From, To, CSeq number and top Via branch.
func (s *Server) cancelOutgoing(inv *sip.Request) {
	req := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	req.AppendHeader(inv.Via().Clone())
	for _, h := range headersNamed(inv, "Route") {
		req.AppendHeader(sip.HeaderClone(h))
	}
	req.AppendHeader(sip.HeaderClone(inv.From()))
	req.AppendHeader(sip.HeaderClone(inv.To()))
	req.AppendHeader(sip.HeaderClone(inv.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	// RFC 7989 §9: the same Session-ID as the request being cancelled.
	if h := firstHeader(inv, SessionIDHeader); h != nil {
		req.AppendHeader(sip.HeaderClone(h))
	}
	mf := sip.MaxForwardsHeader(uint32(s.cfg.MaxForwards))
	req.AppendHeader(&mf)
	req.SetBody(nil)
	req.SetTransport(inv.Transport())
	req.Laddr = inv.Laddr
	if d := inv.Destination(); d != "" {
		req.SetDestination(d)
	}
	s.finish(req, nil)
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
