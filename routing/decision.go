package routing

// Call is what routing knows of a new call: the numbers (user parts of the
// From URI and of the Request-URI), its Session-ID and where it came from.
type Call struct {
	From      string
	To        string
	SessionID string
	Source    string // transport address of the peer that sent the INVITE
}

// Action is what the B2BUA should do with the call.
type Action int

// The actions a Decision can carry.
const (
	ActionForward Action = iota + 1 // create the outgoing legs in Targets
	ActionReject                    // answer the caller with Code and Reason
)

// String names the action for logs.
func (a Action) String() string {
	switch a {
	case ActionForward:
		return "forward"
	case ActionReject:
		return "reject"
	default:
		return "unknown"
	}
}

// Target is one destination of an outgoing leg.
type Target struct {
	URI string // SIP URI of the next hop; the user part of the call's Request-URI is kept
}

// Decision is the routing outcome for a call.
type Decision struct {
	Action  Action
	Targets []Target // ActionForward: the legs to create, in order
	Code    int      // ActionReject: SIP status code
	Reason  string   // ActionReject: reason phrase
}

// Forward builds a decision that sends the call to targets.
func Forward(targets ...Target) Decision {
	return Decision{Action: ActionForward, Targets: targets}
}

// Reject builds a decision that refuses the call.
func Reject(code int, reason string) Decision {
	return Decision{Action: ActionReject, Code: code, Reason: reason}
}

// Decider is the interface of every routing stage.
type Decider interface {
	Decide(call Call) Decision
}
