package b2bua

import (
	"slices"
	"sync"

	"callpath/cdr"
	"callpath/routing"
)

// pendingLoop is a call callpath sent to a TAS (leg 2) that the TAS may
// send back (leg 3, DESIGN §3). Leg 3 is recognised by the Session-ID of
// leg 2, kept unchanged by the TAS, by coming from that TAS, and by a
// Max-Forwards lower than leg 2's; it then continues at returnStage, so the
// registration that looped it never loops it again.
type pendingLoop struct {
	sessionUUID string // the Session-ID sent on leg 2 (its sender's UUID)
	tas         string // the registration's sip_uri
	maxForwards int    // Max-Forwards of leg 2
	returnStage routing.Stage
	routeType   string
	sentUser    string // Request-URI user on leg 2, prefixed
	calledUser  string // the number called, without the prefix
}

// loopTable holds the loops waiting for their leg 3, by Session-ID UUID.
// A UUID can have several: a call looped by the caller's registration and
// again by the callee's keeps one Session-ID across all its legs.
type loopTable struct {
	mu sync.Mutex
	m  map[string][]*pendingLoop
}

func newLoopTable() *loopTable { return &loopTable{m: make(map[string][]*pendingLoop)} }

func (t *loopTable) add(p *pendingLoop) {
	t.mu.Lock()
	t.m[p.sessionUUID] = append(t.m[p.sessionUUID], p)
	t.mu.Unlock()
}

func (t *loopTable) remove(p *pendingLoop) {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := slices.DeleteFunc(t.m[p.sessionUUID], func(q *pendingLoop) bool { return q == p })
	if len(list) == 0 {
		delete(t.m, p.sessionUUID)
		return
	}
	t.m[p.sessionUUID] = list
}

// match finds the loop an INVITE from one of the TASes fromTAS, carrying
// sessionUUID and maxForwards, returns from: of those it may return from,
// the innermost (lowest Max-Forwards), since a TAS can be in a call twice.
func (t *loopTable) match(sessionUUID string, fromTAS []string, maxForwards int) *pendingLoop {
	t.mu.Lock()
	defer t.mu.Unlock()
	var best *pendingLoop
	for _, p := range t.m[sessionUUID] {
		if maxForwards >= p.maxForwards || !slices.Contains(fromTAS, p.tas) {
			continue
		}
		if best == nil || p.maxForwards < best.maxForwards {
			best = p
		}
	}
	return best
}

func (t *loopTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, l := range t.m {
		n += len(l)
	}
	return n
}

// breakoutUse is a registration that acted on a call.
type breakoutUse struct {
	routeType, direction string
}

// breakoutOutcome names how a call a registration acted on ended.
func breakoutOutcome(finalCode int, party cdr.HangupParty, answeredBy routing.BranchKind) string {
	switch {
	case finalCode < 300 && answeredBy == routing.ToTAS:
		return "answered_tas"
	case finalCode < 300:
		return "answered_destination"
	case finalCode == 486 || finalCode == 600:
		return "busy"
	case finalCode == 487 && party == cdr.HangupCaller:
		return "cancelled"
	case finalCode == 408 || finalCode == 480 || finalCode == 487:
		return "no_answer"
	case party == cdr.HangupCallee:
		return "rejected"
	default:
		return "failed"
	}
}
