package routing

import (
	"fmt"
	"strings"

	"callpath/registry"
)

// Explanation is a plan in words, for `callpath route explain` and its REST
// twin: which registrations apply and which legs the call would get.
type Explanation struct {
	From          string   `json:"from"`
	To            string   `json:"to"`
	Registrations []string `json:"registrations"`
	Legs          []string `json:"legs"`
	Result        string   `json:"result"`
}

// Explain plans a new call from -> to and says why.
func (b *Breakout) Explain(from, to string) Explanation {
	e := Explanation{From: from, To: to, Registrations: []string{}, Legs: []string{}}
	if r, ok := b.Registrations.Lookup(from); ok {
		e.Registrations = append(e.Registrations, describeRegistration("caller (MO)", r))
	}
	if r, ok := b.Registrations.Lookup(to); ok {
		e.Registrations = append(e.Registrations, describeRegistration("callee (MT)", r))
	}
	plan := b.Plan(BreakoutCall{Call: Call{From: from, To: to}})
	if plan.Action == ActionReject {
		e.Result = fmt.Sprintf("rejected: %d %s", plan.Code, plan.Reason)
		return e
	}
	leg := 2
	for _, br := range plan.Branches {
		e.Legs = append(e.Legs, describeBranch(&leg, br, ""))
	}
	if len(plan.Branches) > 1 {
		e.Result = fmt.Sprintf("fork: %d legs ring at once, the first answer wins", len(plan.Branches))
	} else {
		e.Result = "one leg"
	}
	return e
}

func describeRegistration(who string, r registry.Registration) string {
	s := fmt.Sprintf("%s %s: %s to %s, expires %s", who, r.PhoneNumber, r.RouteType, r.SIPURI, r.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"))
	if r.MOPrefix != "" || r.MTPrefix != "" {
		s += fmt.Sprintf(", prefixes MO %q MT %q", r.MOPrefix, r.MTPrefix)
	}
	return s
}

func describeBranch(leg *int, b Branch, when string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "leg %d%s: INVITE sip:%s@… to %s", *leg, when, b.User, b.Target.URI)
	*leg++
	switch {
	case b.Kind == ToTAS && b.IsLoop():
		fmt.Fprintf(&sb, " (%s LOOP TAS; when it sends the call back as leg %d, ", b.Direction, *leg)
		if b.ReturnStage == StageMT {
			sb.WriteString("the callee's registration is applied next)")
		} else {
			sb.WriteString("it goes to the destination)")
		}
	case b.Kind == ToTAS:
		fmt.Fprintf(&sb, " (%s %s TAS)", b.Direction, b.Registration.RouteType)
	default:
		sb.WriteString(" (destination)")
	}
	if b.Fallback != nil {
		sb.WriteString("; on 486/600 or no answer within " + b.FallbackAfter.String() + ": ")
		sb.WriteString(describeBranch(leg, *b.Fallback, " (fallback)"))
	}
	return sb.String()
}
