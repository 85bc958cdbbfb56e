package routing

import (
	"slices"
	"strings"
	"time"

	"callpath/registry"
)

// Stage says which registrations may still act on a call (DESIGN §3): a new
// call may meet the caller's (MO) and then the callee's (MT); a call that a
// TAS sends back after an MO loop (leg 3) only the callee's; one sent back
// after an MT loop none.
type Stage int

const (
	StageMO   Stage = iota // a new call
	StageMT                // leg 3 of a loop on the caller's registration
	StageDone              // leg 3 of a loop on the callee's registration
	stageNone Stage = -1   // a branch that is no loop
)

// Registrations finds a number's active registration.
type Registrations interface {
	Lookup(number string) (registry.Registration, bool)
}

// BranchKind says where a branch goes.
type BranchKind int

const (
	ToDestination BranchKind = iota + 1 // the called number's real destination
	ToTAS                               // a registration's TAS
)

// Branch is one outgoing leg of a plan.
type Branch struct {
	Kind   BranchKind
	Target Target // the destination, or the TAS's sip_uri
	// User is the Request-URI user part: the called number, with the
	// registration's prefix when the branch goes to a TAS.
	User string
	// Registration is the one that put a TAS branch into the plan.
	Registration *registry.Registration
	Direction    string // "MO" or "MT": whose registration
	// ReturnStage is, for a LOOP branch, the stage the call continues at
	// when the TAS sends it back (leg 3); stageNone otherwise.
	ReturnStage Stage
	// Fallback, for the destination branch of a FALLBACK registration, is
	// where the call goes when the destination is busy (486, 600) or has not
	// answered within FallbackAfter.
	Fallback      *Branch
	FallbackAfter time.Duration
}

// IsLoop reports whether the TAS of this branch may send the call back.
func (b Branch) IsLoop() bool { return b.ReturnStage != stageNone }

// Plan is what the B2BUA does with a call: ring Branches at once (first 2xx
// wins), or reject.
type Plan struct {
	Action   Action
	Branches []Branch
	Code     int
	Reason   string
}

// Breakout plans calls with the virtual registrations on top of the static
// table, which gives the real destinations.
type Breakout struct {
	Destinations  Decider
	Registrations Registrations // nil: none

	FallbackTimeout time.Duration
}

// BreakoutCall is a call as Breakout sees it.
type BreakoutCall struct {
	Call
	Stage Stage
	// FromTAS lists the TASes (their sip_uri) the call's source was
	// recognised as; empty for calls from elsewhere. Only a new call
	// (StageMO) from a TAS is checked against INGRESS.
	FromTAS []string
}

// Plan decides a call.
func (b *Breakout) Plan(call BreakoutCall) Plan {
	// The caller's registration acts on a new call only, but it sets the
	// prefix toward any TAS of the call.
	var caller, callee *registry.Registration
	if b.Registrations != nil {
		if r, ok := b.Registrations.Lookup(call.From); ok {
			caller = &r
		}
		if call.Stage <= StageMT {
			if r, ok := b.Registrations.Lookup(call.To); ok {
				callee = &r
			}
		}
	}
	if call.Stage == StageMO && len(call.FromTAS) > 0 {
		if callee == nil || callee.RouteType != registry.RouteIngress || !slices.Contains(call.FromTAS, callee.SIPURI) {
			return Plan{Action: ActionReject, Code: 403, Reason: "Forbidden"}
		}
	}

	dest := b.Destinations.Decide(call.Call)
	var destBranch *Branch
	if dest.Action == ActionForward && len(dest.Targets) > 0 {
		destBranch = &Branch{Kind: ToDestination, Target: dest.Targets[0], User: call.To, ReturnStage: stageNone}
	}
	prefixed := b.prefixed(call.To, caller, callee)
	if call.Stage != StageMO {
		caller = nil
	}

	var branches []Branch
	switch {
	case caller != nil && (caller.RouteType == registry.RouteLoop || caller.RouteType == registry.RouteLoopMO):
		branches = []Branch{tasBranch(caller, "MO", prefixed, StageMT)}
	case caller != nil && caller.RouteType == registry.RouteFork:
		branches = append([]Branch{tasBranch(caller, "MO", prefixed, stageNone)}, b.terminating(call, callee, destBranch, prefixed)...)
	default:
		branches = b.terminating(call, callee, destBranch, prefixed)
	}
	if len(branches) == 0 {
		code, reason := dest.Code, dest.Reason
		if code == 0 {
			code, reason = 404, "Not Found"
		}
		return Plan{Action: ActionReject, Code: code, Reason: reason}
	}
	return Plan{Action: ActionForward, Branches: branches}
}

// terminating is the callee side of a plan: its registration's branches,
// or the destination.
func (b *Breakout) terminating(call BreakoutCall, callee *registry.Registration, dest *Branch, prefixed string) []Branch {
	var out []Branch
	switch {
	case callee == nil || call.Stage == StageDone:
	case callee.RouteType == registry.RouteLoop || callee.RouteType == registry.RouteLoopMT:
		return []Branch{tasBranch(callee, "MT", prefixed, StageDone)}
	case callee.RouteType == registry.RouteFork:
		out = append(out, tasBranch(callee, "MT", prefixed, stageNone))
	case callee.RouteType == registry.RouteFallback:
		tas := tasBranch(callee, "MT", prefixed, stageNone)
		if dest == nil {
			return []Branch{tas}
		}
		d := *dest
		d.Fallback, d.FallbackAfter = &tas, b.FallbackTimeout
		return []Branch{d}
	}
	if dest != nil {
		out = append(out, *dest)
	}
	return out
}

func tasBranch(r *registry.Registration, direction, user string, ret Stage) Branch {
	return Branch{Kind: ToTAS, Target: Target{URI: r.SIPURI}, User: user, Registration: r, Direction: direction, ReturnStage: ret}
}

// prefixed is the called number as a TAS sees it: with the caller's
// mobile_originating_prefix when the caller has a registration, else the
// callee's mobile_terminating_prefix; the prefix goes after a leading "+"
// ("00": +4799990000 becomes +004799990000).
func (b *Breakout) prefixed(number string, caller, callee *registry.Registration) string {
	prefix := ""
	switch {
	case caller != nil:
		prefix = caller.MOPrefix
	case callee != nil:
		prefix = callee.MTPrefix
	}
	if prefix == "" {
		return number
	}
	if rest, ok := strings.CutPrefix(number, "+"); ok {
		return "+" + prefix + rest
	}
	return prefix + number
}
