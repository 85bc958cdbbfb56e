package sipstack

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

type serverState int

const (
	serverTrying     serverState = iota // request received, nothing sent
	serverProceeding                    // a provisional response sent
	serverCompleted                     // a final response sent (INVITE: a non-2xx, waiting for ACK)
	serverConfirmed                     // INVITE: the ACK for the non-2xx came
	serverAccepted                      // INVITE: a 2xx sent (RFC 6026)
	serverTerminated
)

var errFinalSent = errors.New("sipstack: transaction already has its final response")

// serverTx is a server transaction (RFC 3261 §17.2, with RFC 6026's Accepted
// state for INVITE). It implements sip.ServerTransaction.
type serverTx struct {
	stack  *Stack
	key    string
	req    *sip.Request
	invite bool

	mu        sync.Mutex
	route     route
	state     serverState
	last      *sip.Response // for retransmissions of the request
	timerG    *time.Timer   // INVITE over UDP: resend the non-2xx final
	timerH    *time.Timer   // INVITE: give up waiting for its ACK
	intervalG time.Duration
	cancelled bool
	onCancel  []sip.FnTxCancel
	onTerm    []sip.FnTxTerminate
	done      chan struct{} // made on demand: most transactions are never waited on
	err       error
}

var _ sip.ServerTransaction = (*serverTx)(nil)

func newServerTx(s *Stack, key string, req *sip.Request, r route) *serverTx {
	return &serverTx{stack: s, key: key, req: req, invite: req.IsInvite(), route: r}
}

// Respond sends a response and moves the state machine.
func (tx *serverTx) Respond(res *sip.Response) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	switch tx.state {
	case serverTrying, serverProceeding:
	case serverAccepted, serverTerminated:
		// The TU retransmits its own 2xx (RFC 6026 §7.1) until the ACK or
		// 64*T1, which may outlast the transaction (Config.Linger): over
		// UDP the address is all it needs. Anything else is one final too
		// many.
		if !tx.invite || res.StatusCode < 200 || res.StatusCode >= 300 || (tx.state == serverTerminated && tx.route.udp == nil) {
			return errFinalSent
		}
		return tx.stack.write(&tx.route, res)
	default:
		return errFinalSent
	}
	if err := tx.stack.write(&tx.route, res); err != nil {
		return fmt.Errorf("%w: %w", sip.ErrTransactionTransport, err)
	}
	tx.last = res
	if res.StatusCode >= 200 {
		// A finished transaction lingers for seconds, thousands of them at
		// once: it keeps only what answers retransmissions.
		tx.req, tx.onCancel = nil, nil
	}
	switch {
	case res.StatusCode < 200:
		tx.state = serverProceeding
	case !tx.invite:
		tx.state = serverCompleted
		tx.stack.reaper.after(tx.stack.cfg.Linger, tx) // Timer J
	case res.StatusCode < 300:
		tx.state = serverAccepted
		tx.last = nil                                  // the TU retransmits its 2xx itself
		tx.stack.reaper.after(tx.stack.cfg.Linger, tx) // Timer L
	default:
		tx.state = serverCompleted
		t1 := tx.stack.cfg.T1
		if !tx.route.reliable() {
			tx.intervalG = t1
			tx.timerG = time.AfterFunc(t1, tx.fireG)
		}
		tx.timerH = time.AfterFunc(64*t1, tx.fireH)
	}
	return nil
}

// receiveRetransmission answers a retransmitted request with the last
// response (RFC 3261 §17.2.1, §17.2.2).
func (tx *serverTx) receiveRetransmission(*sip.Request) {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.last == nil || tx.state == serverAccepted || tx.state == serverConfirmed || tx.state == serverTerminated {
		return
	}
	_ = tx.stack.write(&tx.route, tx.last)
}

// receiveAck handles an ACK matching this transaction; false means it is
// the ACK of a 2xx, for the TU (RFC 6026 §8.2: Accepted passes ACKs up).
func (tx *serverTx) receiveAck(*sip.Request) bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	switch tx.state {
	case serverCompleted:
		tx.state = serverConfirmed
		tx.last = nil
		stopTimer(tx.timerG)
		stopTimer(tx.timerH)
		tx.stack.reaper.after(tx.stack.cfg.T4, tx) // Timer I
		return true
	case serverAccepted, serverTerminated:
		return false
	default:
		return true // an ACK before any final response: nothing to do
	}
}

// cancel applies a matching CANCEL: 487 unless a final response went
// out, then the OnCancel callbacks.
func (tx *serverTx) cancel(cancel *sip.Request) {
	if !tx.invite {
		return
	}
	tx.mu.Lock()
	if tx.cancelled || (tx.state != serverTrying && tx.state != serverProceeding) {
		tx.mu.Unlock()
		return
	}
	tx.cancelled = true
	fns := tx.onCancel
	tx.onCancel = nil
	res := sip.NewResponseFromRequest(tx.req, 487, "Request Terminated", nil)
	tx.mu.Unlock()
	_ = tx.Respond(res)
	for _, f := range fns {
		f(cancel)
	}
}

func (tx *serverTx) fireG() {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.state != serverCompleted {
		return
	}
	_ = tx.stack.write(&tx.route, tx.last)
	tx.intervalG = min(2*tx.intervalG, tx.stack.cfg.T2)
	tx.timerG.Reset(tx.intervalG)
}

func (tx *serverTx) fireH() {
	tx.mu.Lock()
	waiting := tx.state == serverCompleted
	tx.mu.Unlock()
	if waiting {
		tx.terminate(fmt.Errorf("no ACK for the final response: %w", sip.ErrTransactionTimeout))
	}
}

func (tx *serverTx) expire() { tx.terminate(nil) }

// terminate ends the transaction once.
func (tx *serverTx) terminate(err error) {
	tx.mu.Lock()
	if tx.state == serverTerminated {
		tx.mu.Unlock()
		return
	}
	tx.state = serverTerminated
	tx.err = err
	stopTimer(tx.timerG)
	stopTimer(tx.timerH)
	tx.route.release()
	if tx.done != nil {
		close(tx.done)
	}
	fns := tx.onTerm
	tx.onTerm = nil
	tx.mu.Unlock()
	tx.stack.server.remove(tx.key, tx)
	for _, f := range fns {
		f(tx.key, err)
	}
}

// Acks is unused by callpath: the ACK of a non-2xx ends here, the ACK of a
// 2xx goes to the handler.
func (tx *serverTx) Acks() <-chan *sip.Request { return nil }

// OnCancel registers f for a CANCEL of this INVITE; false when it was
// cancelled already or is over.
func (tx *serverTx) OnCancel(f sip.FnTxCancel) bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.cancelled || tx.state == serverTerminated {
		return false
	}
	tx.onCancel = append(tx.onCancel, f)
	return true
}

// OnTerminate registers f for the end of the transaction; false when it has
// ended already.
func (tx *serverTx) OnTerminate(f sip.FnTxTerminate) bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.state == serverTerminated {
		return false
	}
	tx.onTerm = append(tx.onTerm, f)
	return true
}

func (tx *serverTx) Terminate() { tx.terminate(sip.ErrTransactionTerminated) }

func (tx *serverTx) Done() <-chan struct{} {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.done == nil {
		tx.done = make(chan struct{})
		if tx.state == serverTerminated {
			close(tx.done)
		}
	}
	return tx.done
}

func (tx *serverTx) Err() error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.cancelled {
		return sip.ErrTransactionCanceled
	}
	return tx.err
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}
