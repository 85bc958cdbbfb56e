package upstream

import "time"

// State is where one upstream registration stands.
type State int

// The states of a registration. A registration starts Registering, is
// Registered once the registrar grants a binding, Refreshing while it
// renews it, Failed between a failed attempt and the retry, Unregistering
// while its binding is removed, and Ended for good.
const (
	StateRegistering State = iota + 1
	StateRegistered
	StateRefreshing
	StateFailed
	StateUnregistering
	StateEnded
)

// States lists every state, for metrics.
var States = []State{StateRegistering, StateRegistered, StateRefreshing, StateFailed, StateUnregistering, StateEnded}

func (s State) String() string {
	switch s {
	case StateRegistering:
		return "registering"
	case StateRegistered:
		return "registered"
	case StateRefreshing:
		return "refreshing"
	case StateFailed:
		return "failed"
	case StateUnregistering:
		return "unregistering"
	case StateEnded:
		return "ended"
	default:
		return "unknown"
	}
}

// Event is a state change of one registration, published on the client's
// bus.
type Event struct {
	ID     string // the account's identifier
	Number string
	State  State
	// Reason says why, for Failed and Ended: the registrar's answer
	// ("403 Forbidden"), "timeout", "authentication failed: …",
	// "unregistered", "removed".
	Reason string
	// Expires is, for Registered, when the binding lapses unless refreshed.
	Expires time.Time
	// RetryAt is, for Failed, when the next attempt goes out.
	RetryAt time.Time
	// BindingLost is, for Failed, whether the binding granted before has
	// lapsed: calls no longer reach the number.
	BindingLost bool
	At          time.Time
}
