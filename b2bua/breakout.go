package b2bua

import (
	"net/netip"
	"slices"

	"github.com/emiago/sipgo/sip"

	"callpath/routing"
)

// Planner decides what to do with a new call (routing.Breakout does: the
// virtual registrations on top of the static routes).
type Planner interface {
	Plan(call routing.BreakoutCall) routing.Plan
}

// TASSources recognises calls that come from a registered TAS
// (registry.TASSources does).
type TASSources interface {
	Match(ip netip.Addr, tlsNames []string) []string
}

// plan decides a new call. A call from a registered TAS is either the leg
// 3 of a loop waiting for it (then it continues where the loop left it and
// is not looped again) or a call the TAS originates, which only an INGRESS
// registration of the called number allows.
func (s *Server) plan(c *call, req *sip.Request, maxForwards int) routing.Plan {
	call := routing.BreakoutCall{
		Call:  routing.Call{From: c.from, To: c.to, SessionID: c.sid.Local, Source: req.Source()},
		Stage: routing.StageMO,
	}
	var fromTAS []string
	if s.tasSources != nil {
		if ap, err := netip.ParseAddrPort(req.Source()); err == nil {
			fromTAS = s.tasSources.Match(ap.Addr(), nil)
		}
	}
	var loop *pendingLoop
	if len(fromTAS) > 0 {
		loop = s.loops.match(c.sid.Local, fromTAS, maxForwards)
	}
	switch {
	case loop != nil:
		call.Stage = loop.returnStage
		if call.To == loop.sentUser {
			call.To = loop.calledUser // the TAS kept the prefixed number
		}
		s.breakoutMetrics.LoopReturned(loop.routeType)
		c.logger().WithField("tas", loop.tas).Debug("leg 3 of a loop")
	case len(fromTAS) > 0:
		call.FromTAS = fromTAS
	}
	c.to = call.To
	plan := s.planner.Plan(call)
	if loop == nil && len(fromTAS) > 0 {
		s.breakoutMetrics.TASOriginated(plan.Action == routing.ActionForward)
	}
	if plan.Action == routing.ActionForward {
		c.noteRegistrations(plan.Branches)
	}
	return plan
}

// noteRegistrations remembers which registrations act on the call, for the
// per-route-type metrics when it ends.
func (c *call) noteRegistrations(branches []routing.Branch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range branches {
		for _, br := range []*routing.Branch{&b, b.Fallback} {
			if br == nil || br.Registration == nil {
				continue
			}
			use := breakoutUse{routeType: br.Registration.RouteType.String(), direction: br.Direction}
			if !slices.Contains(c.breakout, use) {
				c.breakout = append(c.breakout, use)
			}
		}
	}
}

// expectLoop files the loop a branch to a TAS opens, until the call ends.
func (s *Server) expectLoop(c *call, route routing.Branch, out *sip.Request, maxForwards int) {
	p := &pendingLoop{
		sessionUUID: c.sid.Local, tas: route.Target.URI, maxForwards: maxForwards,
		returnStage: route.ReturnStage, sentUser: route.User, calledUser: c.to,
	}
	if route.Registration != nil {
		p.routeType = route.Registration.RouteType.String()
	}
	s.loops.add(p)
	c.mu.Lock()
	c.loops = append(c.loops, p)
	c.mu.Unlock()
}
