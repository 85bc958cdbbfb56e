package b2bua

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"callpath/cdr"
	"callpath/sipstack"
)

// Dialog keepalive.
//
// A call whose two parties both vanish without a BYE (a phone losing
// power, a PBX rebooting, a BYE lost with every retransmission) would stay
// in the call table for ever: its memory, an active call in the gauge, and
// a CDR never written. Every Config.DialogKeepalive an answered call sends
// an in-dialog OPTIONS on each leg (as Kamailio's dialog keepalive does; it
// needs nothing from the peer but RFC 3261, unlike session timers). Any
// final response says the dialog lives, 405 or 501 included; 481 (the peer
// no longer knows the dialog), 408 or no response at all (Timer F) says it
// is gone, and the call ends: BYE on both legs, the CDR with the reason. An
// OPTIONS that cannot be sent (a TLS connection the peer closed while
// idle) proves nothing either way, and the call goes on.

// startKeepalive arms the call's first probe once it is answered and
// confirmed.
func (s *Server) startKeepalive(c *call) {
	if s.cfg.DialogKeepalive <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended || c.keepalive != nil {
		return
	}
	c.keepalive = time.AfterFunc(s.cfg.DialogKeepalive, func() { s.probeDialogs(c) })
}

// stopKeepaliveLocked stops the probes of an ending call. Called with c.mu
// held.
func (c *call) stopKeepaliveLocked() {
	if c.keepalive != nil {
		c.keepalive.Stop()
	}
}

// probeDialogs sends OPTIONS on both legs and, once both have answered,
// either ends the call or arms the next probe.
func (s *Server) probeDialogs(c *call) {
	if c.getState() != stateConfirmed {
		return // ended meanwhile
	}
	legs := []*leg{c.a, c.outgoing()}
	var mu sync.Mutex
	left := len(legs)
	var deadLeg *leg
	var why string
	answered := func(l *leg, dead bool, reason string) {
		mu.Lock()
		if dead && deadLeg == nil {
			deadLeg, why = l, reason
		}
		left--
		last := left == 0
		mu.Unlock()
		if !last {
			return
		}
		if deadLeg != nil {
			s.endDeadCall(c, deadLeg, why)
			return
		}
		c.mu.Lock()
		if !c.ended {
			c.keepalive.Reset(s.cfg.DialogKeepalive)
		}
		c.mu.Unlock()
	}
	for _, l := range legs {
		if l == nil {
			answered(nil, false, "")
			continue
		}
		req := l.newRequest(sip.OPTIONS, l.nextCSeq())
		c.setSessionID(l, req)
		s.prepare(req, s.cfg.MaxForwards)
		_, err := s.stack.RequestFunc(s.ctx, req, sipstack.Callbacks{
			Response: func(res *sip.Response) {
				s.metrics.Response("OPTIONS", res.StatusCode, "in")
				if res.StatusCode >= 200 {
					gone := res.StatusCode == 481 || res.StatusCode == 408
					answered(l, gone, strconv.Itoa(res.StatusCode)+" "+res.Reason)
				}
			},
			Failure: func(err error) {
				s.failureResponse("OPTIONS", err)
				// Only silence is an answer: a connection that could
				// not be made or broke (a TLS flow the peer closed
				// while idle) says nothing of the dialog.
				answered(l, errors.Is(err, sip.ErrTransactionTimeout), "no response")
			},
		})
		if err != nil {
			l.call.logger().WithError(err).Debug("dialog keepalive: OPTIONS not sent")
			answered(l, false, "")
			continue
		}
		s.metrics.Request("OPTIONS", "out")
	}
}

// endDeadCall ends a call one of whose dialogs is gone: BYE on both legs
// (the dead one's goes nowhere, harmlessly), the CDR says which side.
func (s *Server) endDeadCall(c *call, dead *leg, why string) {
	if c.getState() != stateConfirmed {
		return // ended meanwhile, by a BYE or the drain
	}
	side := "callee"
	if dead == c.a {
		side = "caller"
	}
	c.logger().WithField("leg", side).WithField("answer", why).Info("dialog keepalive: the dialog is gone, hanging up")
	b := c.outgoing()
	s.flushPendingAck(c.a)
	s.flushPendingAck(b)
	c.end(cdr.HangupGateway, 200, "dialog keepalive: "+side+" "+why)
	s.byeLeg(c, c.a, nil)
	s.byeLeg(c, b, nil)
}
