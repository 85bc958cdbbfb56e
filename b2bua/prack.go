package b2bua

import (
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Reliable provisional responses (RFC 3262, "100rel") on outgoing legs.
//
// IMS TASes and trunks commonly send their 183 (early media, often with the
// SDP answer) and 180 reliably, and some refuse an INVITE whose sender does
// not support that. callpath acknowledges them itself, hop by hop: each
// reliable provisional of an outgoing leg gets its PRACK from callpath, and
// the caller gets it as an ordinary provisional response (without Require
// and RSeq), which needs no PRACK. A callee that sent its SDP answer in a
// reliable provisional may leave it out of the 200 (the answer is
// final once PRACKed); the caller, who got it in an unreliable
// provisional, must find it in the 200 (RFC 3261 §13.2.1), so callpath puts
// it there.
//
// 100rel is offered only on INVITEs that carry an offer: to an offerless
// INVITE the callee would make its offer in a reliable provisional and want
// the answer in the PRACK, which only the caller could give.

// supported100rel is the Supported header of an outgoing INVITE with an
// offer (shared and read-only, like allowHeader).
var supported100rel = sip.NewHeader("Supported", "100rel")

// earlyDialog is what a branch keeps of one early dialog (one To tag) whose
// provisional responses come reliably. Guarded by the setup's mutex.
type earlyDialog struct {
	rseq        uint32     // RSeq of the last reliable provisional PRACKed
	answer      []byte     // SDP of the first reliable provisional carrying one
	contentType sip.Header // its Content-Type
}

// reliableRSeq returns the RSeq of a provisional response sent reliably
// (Require: 100rel and a valid RSeq); false for an ordinary one.
func reliableRSeq(res *sip.Response) (uint32, bool) {
	if res.StatusCode <= 100 || res.StatusCode >= 200 {
		return 0, false
	}
	// RSeq first: it is rare, and looking for it allocates nothing, where
	// collecting the Require headers would on every 180 of every call.
	h := firstHeader(res, "RSeq")
	if h == nil || !requires100rel(res) {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint32(n), true
}

// requires100rel reports whether a message's Require lists 100rel.
func requires100rel(msg sip.Message) bool {
	for _, h := range headersNamed(msg, "Require") {
		for _, tag := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(tag), "100rel") {
				return true
			}
		}
	}
	return false
}

// acknowledgeReliable PRACKs a reliable provisional response of the branch
// and reports whether it is new (to be relayed). RFC 3262 §4: the first
// one of an early dialog sets its sequence; after that only RSeq one
// higher is PRACKed. A retransmission (our PRACK is on its way: its own
// transaction retransmits it) and one out of order (the callee sends it
// again once the earlier one is PRACKed) are neither PRACKed nor relayed.
// Called with st.mu held.
func (br *branch) acknowledgeReliable(res *sip.Response, rseq uint32) bool {
	tag := tagOf(res.To().Params)
	if tag == "" {
		return true // no dialog to PRACK in: taken as an ordinary provisional
	}
	if br.early == nil {
		br.early = make(map[string]*earlyDialog, 1)
	}
	ed := br.early[tag]
	switch {
	case ed == nil:
		ed = &earlyDialog{rseq: rseq}
		br.early[tag] = ed
	case rseq == ed.rseq+1:
		ed.rseq = rseq
	default:
		return false
	}
	if ed.answer == nil && len(res.Body()) > 0 {
		ed.answer = res.Body()
		ed.contentType = firstHeader(res, "Content-Type")
	}
	br.st.srv.sendPRACK(br.st.c, br.leg, br.out, res, rseq)
	return true
}

// withEarlyAnswer returns the 2xx to relay to the caller: res itself, or,
// when it has no SDP and its early dialog's reliable provisional had the
// answer, a copy carrying that answer. Called with st.mu held.
func (br *branch) withEarlyAnswer(res *sip.Response) *sip.Response {
	if len(res.Body()) > 0 {
		return res
	}
	ed := br.early[tagOf(res.To().Params)]
	if ed == nil || ed.answer == nil {
		return res
	}
	out := res.Clone()
	out.RemoveHeader("Content-Type")
	if ed.contentType != nil {
		out.AppendHeader(sip.HeaderClone(ed.contentType))
	} else {
		out.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	out.SetBody(ed.answer)
	return out
}

// sendPRACK acknowledges the reliable provisional res (RSeq rseq) to our
// INVITE inv on outgoing leg l, in res's early dialog: its To tag, its
// Contact as target, its Record-Route reversed as route set, the leg's next
// CSeq, and RAck naming the response (RFC 3262 §7.2).
func (s *Server) sendPRACK(c *call, l *leg, inv *sip.Request, res *sip.Response, rseq uint32) {
	l.mu.Lock()
	flow := l.flow
	l.mu.Unlock()
	d := &leg{
		call: c, index: l.index, side: sideUAC, callID: l.callID, localTag: l.localTag,
		local: l.local, localName: l.localName, remote: l.remote, remoteNm: l.remoteNm,
		transport: l.transport, contact: l.contact,
		remoteTag: tagOf(res.To().Params), remoteTarget: *inv.Recipient.Clone(), flow: flow,
	}
	d.learnTarget(res, true, true)
	req := d.newRequest(sip.PRACK, l.nextCSeq())
	req.AppendHeader(sip.NewHeader("RAck", strconv.FormatUint(uint64(rseq), 10)+" "+
		strconv.FormatUint(uint64(inv.CSeq().SeqNo), 10)+" INVITE"))
	c.setSessionID(l, req)
	s.prepare(req, s.cfg.MaxForwards)
	s.finish(req, nil)
}
