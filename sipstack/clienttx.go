package sipstack

import (
	"fmt"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

type clientState int

const (
	clientCalling    clientState = iota // request sent, no response yet
	clientProceeding                    // a provisional response came
	clientCompleted                     // a non-2xx final came (INVITE: ACKed)
	clientAccepted                      // INVITE: a 2xx came (RFC 6026)
	clientTerminated
)

// responseQueue is how many responses wait for the TU. Provisional
// responses beyond it are dropped (the TU is behind and only the latest
// matters); the slot kept free is for the final response.
const responseQueue = 8

// clientTx is a client transaction (RFC 3261 §17.1, with RFC 6026's Accepted
// state for INVITE). It implements sip.ClientTransaction.
type clientTx struct {
	stack     *Stack
	key       string
	req       *sip.Request
	invite    bool
	responses chan *sip.Response // nil when the TU takes callbacks
	done      chan struct{}
	on        Callbacks

	mu        sync.Mutex
	route     route
	state     clientState
	timerA    *time.Timer // retransmission: Timer A (INVITE) or E
	timerB    *time.Timer // timeout: Timer B (INVITE) or F
	interval  time.Duration
	ack       *sip.Request // INVITE: the ACK of the non-2xx final, resent on its retransmissions
	onRetrans []sip.FnTxResponse
	onTerm    []sip.FnTxTerminate
	err       error
}

var _ sip.ClientTransaction = (*clientTx)(nil)

// Callbacks receive a client transaction's outcome on the read loop, in
// place of the Responses channel; they must not block. Response gets the
// provisional responses and the first final one (later 2xx go to
// OnRetransmission); Failure gets a timeout or transport error. Two read
// loops may deliver two responses of one transaction at once: a 200 may
// overtake a 180.
type Callbacks struct {
	Response func(*sip.Response)
	Failure  func(error)
}

func newClientTx(s *Stack, key string, req *sip.Request, r route, on Callbacks) *clientTx {
	tx := &clientTx{stack: s, key: key, req: req, invite: req.IsInvite(), route: r, on: on, done: make(chan struct{})}
	if on.Response == nil {
		tx.responses = make(chan *sip.Response, responseQueue)
	}
	return tx
}

// deliver hands a response to the TU: on the channel under tx.mu (which
// keeps the order), or through the callback after tx.mu is released.
func (tx *clientTx) deliver(res *sip.Response) (later *sip.Response) {
	if tx.responses == nil {
		return res
	}
	if res.StatusCode >= 200 || len(tx.responses) < responseQueue-1 {
		tx.responses <- res
	}
	return nil
}

// start sends the request and arms the timers.
func (tx *clientTx) start() error {
	tx.mu.Lock()
	if err := tx.stack.write(&tx.route, tx.req); err != nil {
		tx.mu.Unlock()
		err = fmt.Errorf("%w: %w", sip.ErrTransactionTransport, err)
		tx.end(err, false) // the caller of start gets err
		return err
	}
	t1 := tx.stack.cfg.T1
	if !tx.route.reliable() {
		tx.interval = t1
		tx.timerA = time.AfterFunc(t1, tx.fireA)
	}
	tx.timerB = time.AfterFunc(64*t1, tx.fireB)
	tx.mu.Unlock()
	return nil
}

// receive handles a response matched to this transaction; it runs on the
// read loop.
func (tx *clientTx) receive(res *sip.Response) {
	var later *sip.Response
	var deliver func(*sip.Response)
	defer func() {
		if later != nil {
			deliver(later)
		}
	}()
	tx.mu.Lock()
	deliver = tx.on.Response
	switch {
	case tx.state == clientTerminated:
		tx.mu.Unlock()
	case res.StatusCode < 200:
		if tx.state == clientCalling {
			tx.state = clientProceeding
			if tx.invite {
				// Timers A and B stop (RFC 3261 §17.1.1.2: B is for
				// Calling): the callee now owes a final response, and
				// may ring for minutes; the TU's no-answer timer says
				// how long callpath waits.
				stopTimer(tx.timerA)
				stopTimer(tx.timerB)
			} else if tx.timerA != nil {
				tx.interval = tx.stack.cfg.T2 // Timer E continues at T2 (§17.1.2.2)
			}
		}
		if tx.state == clientProceeding {
			later = tx.deliver(res)
		}
		tx.mu.Unlock()
	case tx.state == clientCalling || tx.state == clientProceeding:
		stopTimer(tx.timerA)
		stopTimer(tx.timerB)
		later = tx.deliver(res)
		// What lingers keeps only what answers retransmissions: not the
		// request, not the TU's callbacks (their last call is this one).
		tx.on = Callbacks{}
		req := tx.req
		tx.req = nil
		switch {
		case !tx.invite:
			// A non-INVITE has nothing to absorb that an unmatched
			// response would not get anyway: no Timer K wait.
			tx.state = clientCompleted
			tx.mu.Unlock()
			tx.end(nil, false)
			return
		case res.StatusCode < 300:
			tx.state = clientAccepted
			tx.stack.reaper.after(tx.stack.cfg.Linger, tx) // Timer M
		default:
			tx.state = clientCompleted
			tx.ack = nonSuccessAck(req, res)
			_ = tx.stack.write(&tx.route, tx.ack)
			tx.stack.reaper.after(tx.stack.cfg.Linger, tx) // Timer D
		}
		tx.mu.Unlock()
	case tx.state == clientCompleted && tx.ack != nil:
		// A retransmitted non-2xx final: ACK it again (§17.1.1.2).
		_ = tx.stack.write(&tx.route, tx.ack)
		tx.mu.Unlock()
	case tx.state == clientAccepted && res.StatusCode < 300:
		// A retransmitted 2xx, or one from another fork: the TU's to
		// handle, through OnRetransmission or else Config.Unmatched (so
		// that a lingering transaction need not keep the TU's state).
		fns := tx.onRetrans
		tx.mu.Unlock()
		if len(fns) == 0 && tx.stack.cfg.Unmatched != nil {
			tx.stack.cfg.Unmatched(res)
		}
		for _, f := range fns {
			f(res)
		}
	default:
		tx.mu.Unlock()
	}
}

// nonSuccessAck builds the ACK of a non-2xx final response, part of the
// INVITE transaction (RFC 3261 §17.1.1.3).
func nonSuccessAck(inv *sip.Request, res *sip.Response) *sip.Request {
	ack := sip.NewRequest(sip.ACK, inv.Recipient)
	ack.SipVersion = inv.SipVersion
	if v := inv.Via(); v != nil {
		ack.AppendHeader(v.Clone())
	}
	for _, h := range inv.GetHeaders("Route") {
		ack.AppendHeader(h)
	}
	if h := inv.From(); h != nil {
		ack.AppendHeader(h)
	}
	if h := res.To(); h != nil {
		ack.AppendHeader(h)
	}
	if h := inv.CallID(); h != nil {
		ack.AppendHeader(h)
	}
	if h := inv.CSeq(); h != nil {
		ack.AppendHeader(&sip.CSeqHeader{SeqNo: h.SeqNo, MethodName: sip.ACK})
	}
	if h := inv.MaxForwards(); h != nil {
		ack.AppendHeader(h)
	}
	// RFC 7989 §9: an ACK for a non-2xx carries the INVITE's Session-ID.
	if h := inv.GetHeader("Session-ID"); h != nil {
		ack.AppendHeader(h)
	}
	ack.SetBody(nil)
	ack.SetTransport(inv.Transport())
	return ack
}

func (tx *clientTx) fireA() {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.state != clientCalling && (tx.invite || tx.state != clientProceeding) {
		return
	}
	_ = tx.stack.write(&tx.route, tx.req)
	if tx.invite {
		tx.interval *= 2
	} else {
		tx.interval = min(2*tx.interval, tx.stack.cfg.T2)
	}
	tx.timerA.Reset(tx.interval)
}

func (tx *clientTx) fireB() {
	tx.mu.Lock()
	// Timer F ends a non-INVITE in Trying or Proceeding; Timer B an INVITE
	// only in Calling (a provisional stops it, but may race with it).
	waiting := tx.state == clientCalling || (tx.state == clientProceeding && !tx.invite)
	tx.mu.Unlock()
	if waiting {
		tx.end(fmt.Errorf("%s: no final response: %w", tx.req.Method, sip.ErrTransactionTimeout), true)
	}
}

func (tx *clientTx) expire() { tx.end(nil, false) }

// end terminates the transaction once; failed says whether err is news for
// the Failure callback (not when the TU ended it or already has the error).
func (tx *clientTx) end(err error, failed bool) {
	tx.mu.Lock()
	if tx.state == clientTerminated {
		tx.mu.Unlock()
		return
	}
	tx.state = clientTerminated
	tx.err = err
	stopTimer(tx.timerA)
	stopTimer(tx.timerB)
	tx.route.release()
	if err != nil {
		close(tx.done)
	}
	failure := tx.on.Failure
	fns := tx.onTerm
	tx.onTerm = nil
	tx.mu.Unlock()
	tx.stack.client.remove(tx.key, tx)
	for _, f := range fns {
		f(tx.key, err)
	}
	if failed && err != nil && failure != nil {
		failure(err)
	}
}

// Responses delivers the provisional responses and the first final one.
func (tx *clientTx) Responses() <-chan *sip.Response { return tx.responses }

// Done is closed when the transaction fails: on timeout (Err says so), on a
// transport error, or on Terminate. A transaction that got its final
// response hands it over on Responses and leaves Done open, so that a TU
// selecting on both never sees the end before the answer.
func (tx *clientTx) Done() <-chan struct{} { return tx.done }

func (tx *clientTx) Err() error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.err
}

// Terminate ends the transaction now; Failure is not called for it.
func (tx *clientTx) Terminate() { tx.end(sip.ErrTransactionTerminated, false) }

// OnRetransmission registers f for 2xx responses after the first.
func (tx *clientTx) OnRetransmission(f sip.FnTxResponse) bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.state == clientTerminated {
		return false
	}
	tx.onRetrans = append(tx.onRetrans, f)
	return true
}

func (tx *clientTx) OnTerminate(f sip.FnTxTerminate) bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.state == clientTerminated {
		return false
	}
	tx.onTerm = append(tx.onTerm, f)
	return true
}
