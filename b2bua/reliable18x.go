package b2bua

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"callpath/cdr"
)

// Reliable provisional responses (RFC 3262) toward a caller that requires
// them (Require: 100rel, as some IMS nodes send). Every provisional
// response but 100 then goes reliably: with Require: 100rel and an RSeq,
// retransmitted (over UDP) at T1, 2*T1, 4*T1 … until the caller's PRACK,
// one at a time (§3: the next only once the last is acknowledged; those
// that come meanwhile wait, in order). A response never PRACKed within
// 64*T1 ends the call with a 5xx. A final response ends it all: what waits
// is dropped.
//
// Only an INVITE with an offer is served so: the provisional responses
// relayed to the caller then carry at most the answer, never an offer the
// PRACK would have to answer. An offerless INVITE requiring 100rel gets
// 420 (unsupportedRequire).

// maxWaitingProvisionals bounds the provisional responses queued behind an
// unacknowledged one; a callee that sends more meanwhile loses the oldest
// without SDP first (they say nothing the later ones do not).
const maxWaitingProvisionals = 8

var require100rel = sip.NewHeader("Require", "100rel")

// reliableSender sends an incoming leg's provisional responses reliably.
type reliableSender struct {
	srv        *Server
	c          *call
	tx         sip.ServerTransaction
	req        *sip.Request // the caller's INVITE
	retransmit bool         // UDP: retransmit; reliable transports: only the 64*T1 limit

	mu       sync.Mutex
	rseq     uint32        // RSeq of the last one sent
	pending  *sip.Response // sent, not yet PRACKed
	waiting  []*sip.Response
	timer    *time.Timer
	interval time.Duration
	sentAt   time.Time
	stopped  bool // a final response went: nothing more
}

// newReliableSender returns the sender of a call whose caller requires
// 100rel, nil otherwise.
func (s *Server) newReliableSender(c *call, req *sip.Request, tx sip.ServerTransaction) *reliableSender {
	if !requires100rel(req) {
		return nil
	}
	return &reliableSender{
		srv: s, c: c, tx: tx, req: req, retransmit: !sip.IsReliable(c.a.transport),
		// RFC 3262 §3: between 1 and 2**31-1, best chosen at random;
		// below 2**30 there is room for any number of increments a call
		// can make.
		rseq: rand.Uint32N(1<<30) + 1,
	}
}

// send sends res (a provisional response built for the caller) reliably,
// now or once the one before it is acknowledged.
func (r *reliableSender) send(res *sip.Response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	if r.pending != nil {
		if len(r.waiting) == maxWaitingProvisionals {
			r.dropOneWaitingLocked()
		}
		r.waiting = append(r.waiting, res)
		return
	}
	r.transmitLocked(res)
}

// dropOneWaitingLocked makes room in the queue: the oldest response
// without a body, else the oldest.
func (r *reliableSender) dropOneWaitingLocked() {
	i := 0
	for j, w := range r.waiting {
		if len(w.Body()) == 0 {
			i = j
			break
		}
	}
	r.waiting = append(r.waiting[:i], r.waiting[i+1:]...)
}

func (r *reliableSender) transmitLocked(res *sip.Response) {
	r.rseq++
	res.AppendHeader(require100rel)
	res.AppendHeader(sip.NewHeader("RSeq", strconv.FormatUint(uint64(r.rseq), 10)))
	r.pending = res
	r.sentAt = time.Now()
	r.interval = r.srv.cfg.T1
	r.srv.respond(r.tx, r.req, res)
	wait := 64 * r.srv.cfg.T1
	if r.retransmit {
		wait = r.interval
	}
	r.timer = time.AfterFunc(wait, r.onTimer)
}

// onTimer retransmits the unacknowledged response, or gives up on the call
// once it has gone unacknowledged for 64*T1.
func (r *reliableSender) onTimer() {
	r.mu.Lock()
	if r.stopped || r.pending == nil {
		r.mu.Unlock()
		return
	}
	limit := 64 * r.srv.cfg.T1
	if since := time.Since(r.sentAt); since < limit {
		err := r.tx.Respond(r.pending)
		r.interval *= 2
		r.timer = time.AfterFunc(min(r.interval, limit-since), r.onTimer)
		r.mu.Unlock()
		if err != nil { // logged unlocked: the call's logger takes c.mu, which c.end holds while it stops us
			r.c.logger().WithError(err).Debug("retransmitting a reliable provisional response")
		}
		return
	}
	r.stopLocked()
	r.mu.Unlock()
	r.c.logger().Info("no PRACK for a reliable provisional response: rejecting the call")
	// RFC 3262 §3: reject the INVITE with a 5xx.
	r.c.requestAbort(abortRequest{code: 504, reason: "Server Time-out", party: cdr.HangupGateway, why: "no PRACK", final: 504})
}

// onPRACK takes the caller's PRACK; false when it acknowledges nothing
// outstanding (RFC 3262 §3 says 481 then).
func (r *reliableSender) onPRACK(rack string) bool {
	rseq, cseq, method, ok := parseRAck(rack)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !ok || r.pending == nil || rseq != r.rseq || cseq != r.req.CSeq().SeqNo || method != sip.INVITE {
		return false
	}
	r.timer.Stop()
	r.pending = nil
	if !r.stopped && len(r.waiting) > 0 {
		next := r.waiting[0]
		r.waiting = r.waiting[1:]
		r.transmitLocked(next)
	}
	return true
}

// stop ends reliable sending: a final response is on its way.
func (r *reliableSender) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
}

func (r *reliableSender) stopLocked() {
	r.stopped = true
	r.waiting = nil
	if r.timer != nil {
		r.timer.Stop()
	}
}

// parseRAck reads "response-num CSeq-num Method" (RFC 3262 §7.2).
func parseRAck(v string) (rseq, cseq uint32, method sip.RequestMethod, ok bool) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return 0, 0, "", false
	}
	r, err1 := strconv.ParseUint(f[0], 10, 32)
	c, err2 := strconv.ParseUint(f[1], 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, "", false
	}
	return uint32(r), uint32(c), sip.RequestMethod(strings.ToUpper(f[2])), true
}

// onPRACK answers a PRACK: 200 when it acknowledges the caller's
// outstanding reliable provisional response, 481 otherwise. A PRACK with a
// body would be a new offer (ours carry answers at most), which callpath
// does not take: 488, and the response stays unacknowledged.
func (s *Server) onPRACK(req *sip.Request, tx sip.ServerTransaction) {
	l := s.dialogRequest(req, tx)
	if l == nil {
		return
	}
	c := l.call
	if len(req.Body()) > 0 {
		s.reply(tx, req, 488, "Not Acceptable Here")
		return
	}
	h := firstHeader(req, "RAck")
	if c.reliable == nil || l != c.a || h == nil || !c.reliable.onPRACK(h.Value()) {
		s.reply(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	c.setSessionID(l, res)
	s.respond(tx, req, res)
}
