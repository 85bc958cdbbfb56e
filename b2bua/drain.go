package b2bua

import (
	"context"
	"sync"
	"time"

	"callpath/cdr"
)

// Drain stops taking new calls (new INVITEs get 503 with Retry-After) and
// waits for the calls in progress to end. When ctx expires first it hangs up
// the rest: BYE on both legs of answered calls, CANCEL and 503 for calls
// still ringing. It returns once every call has ended.
func (s *Server) Drain(ctx context.Context) {
	s.draining.Store(true)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for s.active.Load() > 0 {
		select {
		case <-ctx.Done():
			s.hangupAll()
			return
		case <-tick.C:
		}
	}
}

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.draining.Load() }

// byeWait bounds, in T1s, how long hangupAll waits for BYE answers: a peer
// that has not answered by then is gone, and shutdown must not wait for
// Timer F (64*T1).
const byeWait = 8

// hangupAll ends every call now and waits (bounded) for the BYEs to be answered.
func (s *Server) hangupAll() {
	var wg sync.WaitGroup
	for _, c := range s.calls.calls() {
		if c.requestAbort(abortRequest{code: 503, reason: "Service Unavailable", party: cdr.HangupGateway, why: "drain"}) {
			continue
		}
		b := c.outgoing()
		s.flushPendingAck(c.a)
		s.flushPendingAck(b)
		c.end(cdr.HangupGateway, 200, "drain")
		for _, l := range []*leg{c.a, b} {
			wg.Add(1)
			s.byeLeg(c, l, wg.Done)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(byeWait * s.cfg.T1):
	}
	// Early calls end through their setups once the CANCEL is answered.
	deadline := time.NewTimer(64 * s.cfg.T1)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.active.Load() > 0 {
		select {
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}
