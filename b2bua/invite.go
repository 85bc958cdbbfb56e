package b2bua

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"callpath/cdr"
	"callpath/routing"
)

// onInvite handles every INVITE: a new call, or a re-INVITE when it carries a
// To tag.
func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	s.metrics.Request("INVITE", "in")
	if why := validateRequest(req); why != "" {
		s.reply(tx, req, 400, why)
		return
	}
	if tagOf(req.To().Params) != "" {
		s.relayInDialog(req, tx)
		return
	}
	if s.draining.Load() {
		s.reply(tx, req, 503, "Service Unavailable",
			sip.NewHeader("Retry-After", strconv.Itoa(int(s.cfg.RetryAfter/time.Second))))
		return
	}
	if tags := unsupportedRequire(req); len(tags) > 0 {
		s.reply(tx, req, 420, "Bad Extension", sip.NewHeader("Unsupported", strings.Join(tags, ", ")))
		return
	}
	mf := maxForwards(req, s.cfg.MaxForwards)
	if mf <= 0 {
		s.reply(tx, req, 483, "Too Many Hops")
		return
	}
	origin := originKey(req.CallID().Value(), tagOf(req.From().Params))
	if prev := s.calls.get(origin); prev != nil {
		// The same INVITE again, after its transaction was forgotten
		// (sip.timers.linger): a late retransmission, already answered, so
		// it is dropped. Or the same request reaching us by another path:
		// RFC 3261 §8.2.2.2 merged request, 482.
		if prev.remoteCSeqAtStart == req.CSeq().SeqNo && prev.branch == branchOf(req) {
			return
		}
		s.reply(tx, req, 482, "Loop Detected")
		return
	}

	c := s.newCall(req)
	c.reliable = s.newReliableSender(c, req, tx)
	// Our tag goes into the request's own To header so that every response
	// built from it, including the 487 sipgo sends by itself on CANCEL,
	// carries the same tag (RFC 3261 §8.2.6.2).
	req.To().Params.Add("tag", c.a.localTag)
	s.calls.add(c.a)
	s.calls.addKey(origin, c.a)
	s.active.Add(1)
	s.metrics.CallStarted()
	s.reply(tx, req, 100, "Trying")

	if !tx.OnCancel(func(*sip.Request) { c.onCancelled() }) {
		c.end(cdr.HangupCaller, 487, "cancel")
		return
	}

	plan := s.plan(c, req, mf)
	if plan.Action != routing.ActionForward || len(plan.Branches) == 0 {
		code, reason := plan.Code, plan.Reason
		if code < 300 {
			code, reason = 500, "Server Internal Error"
		}
		s.reply(tx, req, code, reason)
		c.end(cdr.HangupGateway, code, "routing: "+reason)
		return
	}
	c.beginInvite()
	s.startSetup(c, req, tx, plan.Branches, mf-1)
}

// newCall builds the call and its incoming leg from the INVITE.
func (s *Server) newCall(req *sip.Request) *call {
	sid := SessionID{Local: NewSessionUUID(), Remote: NullUUID}
	// Only the first Session-ID counts (RFC 7989 §7: one per message).
	if h := firstHeader(req, SessionIDHeader); h != nil {
		if parsed, err := ParseSessionID(h.Value()); err == nil && parsed.Local != NullUUID {
			sid = parsed
		}
	}
	c := &call{
		srv: s, id: req.CallID().Value(), from: userOf(&req.From().Address), to: req.Recipient.User,
		started: time.Now(), sid: sid,
	}
	a := &leg{
		call: c, index: 1, side: sideUAS, callID: c.id, localTag: sip.GenerateTagN(16),
		local: *req.To().Address.Clone(), localName: req.To().DisplayName,
		remote: *req.From().Address.Clone(), remoteNm: req.From().DisplayName,
		transport: transportOf(req),
	}
	a.key = dialogKey(a.callID, a.localTag)
	a.contact = s.contact(a.transport)
	a.remoteTag = tagOf(req.From().Params)
	a.remoteCSeq = req.CSeq().SeqNo
	a.remoteCSeqAtStart = a.remoteCSeq
	a.branch = branchOf(req)
	a.remoteTarget = *req.From().Address.Clone()
	a.learnTarget(req, true, false) // UAS: Record-Route in the order received
	if sip.IsReliable(a.transport) {
		a.flow = req.Source()
	}
	c.a = a
	return c
}

// newOutgoingInvite builds an outgoing leg and its INVITE for a branch of
// the plan: new Call-ID, tags, CSeq, Via and Contact; the caller's number
// and display name, our host; the SDP and the whitelisted headers;
// Max-Forwards one lower than received (RFC 7332). The Request-URI is the
// branch's target with the branch's user part (the called number, prefixed
// toward a TAS).
func (s *Server) newOutgoingInvite(c *call, in *sip.Request, route routing.Branch, maxFwd int) (*leg, *sip.Request, error) {
	var ruri sip.Uri
	if err := sip.ParseUri(route.Target.URI, &ruri); err != nil {
		return nil, nil, fmt.Errorf("route target %q: %w", route.Target.URI, err)
	}
	if ruri.Host == "" {
		return nil, nil, fmt.Errorf("route target %q has no host", route.Target.URI)
	}
	switch {
	case route.Kind == routing.ToTAS:
		ruri.User = route.User
	case ruri.User == "":
		ruri.User = route.User
	}
	b := &leg{
		call: c, index: c.nextLegIndex(), side: sideUAC, callID: sip.GenerateTagN(24), localTag: sip.GenerateTagN(16),
		local:     sip.Uri{Scheme: "sip", User: c.from, Host: s.listeners.host},
		localName: in.From().DisplayName,
		remote:    sip.Uri{Scheme: ruri.Scheme, User: ruri.User, Host: ruri.Host, Port: ruri.Port},
		remoteNm:  in.To().DisplayName,
	}
	b.key = dialogKey(b.callID, b.localTag)
	b.remoteTarget = ruri
	probe := sip.NewRequest(sip.INVITE, ruri)
	b.transport = transportOf(probe)
	if ruri.Scheme == "sips" && b.transport == "UDP" {
		b.transport = "TLS" // RFC 3261 §26.2.1: sips: is TLS over TCP, whatever the URI says
	}
	b.contact = s.contact(b.transport)
	b.localCSeq = 1

	req := b.newRequest(sip.INVITE, 1)
	copyHeaders(req, in, passedHeaders)
	req.AppendHeader(allowHeader)
	if len(in.Body()) > 0 {
		req.AppendHeader(supported100rel) // see prack.go
	}
	c.setSessionID(b, req)
	req.SetBody(in.Body())
	s.prepare(req, maxFwd)
	return b, req, nil
}

// answer relays the callee's 2xx to the caller and arms the wait for the
// caller's ACK, which is relayed to the callee.
func (s *Server) answer(c *call, req *sip.Request, tx sip.ServerTransaction, out *sip.Request, res *sip.Response) {
	b := c.outgoing()
	b.mu.Lock()
	b.remoteTag = tagOf(res.To().Params)
	b.mu.Unlock()
	b.learnTarget(res, true, true) // UAC: Record-Route reversed (RFC 3261 §12.1.2)

	pa := s.newPendingAck(c, c.a, tx, req, b, out)
	c.setState(stateAnswered)
	res2 := s.relayResponse(c, c.a, tx, req, res, res.StatusCode, res.Reason)
	pa.start(res2)
	s.metrics.CallAnswered(time.Since(c.started))
}

// relayResponse answers req on leg l with code, carrying over the body and
// whitelisted headers of res (the response of the other leg).
func (s *Server) relayResponse(c *call, l *leg, tx sip.ServerTransaction, req *sip.Request, res *sip.Response, code int, reason string) *sip.Response {
	out := relayedResponse(c, l, req, res, code, reason)
	s.respond(tx, req, out)
	return out
}

// relayedResponse builds what relayResponse sends.
func relayedResponse(c *call, l *leg, req *sip.Request, res *sip.Response, code int, reason string) *sip.Response {
	out := sip.NewResponseFromRequest(req, code, reason, res.Body())
	copyHeaders(out, res, passedResponseHeaders)
	if code > 100 && code < 300 && (req.IsInvite() || req.Method == sip.UPDATE) {
		out.AppendHeader(l.contact)
		out.AppendHeader(allowHeader)
	}
	c.setSessionID(l, out)
	return out
}

// finalCode is the code the CDR records for an aborted call.
func (a *abortRequest) finalCode() int {
	if a.final != 0 {
		return a.final
	}
	return a.code
}
