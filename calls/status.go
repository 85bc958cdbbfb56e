package calls

// Status is a media session's SessionStatus.
type Status string

// The SessionStatus values (r2.2 and main alike).
const (
	Initial          Status = "Initial"
	InProgress       Status = "InProgress"
	Ringing          Status = "Ringing"
	Proceeding       Status = "Proceeding"
	Connected        Status = "Connected"
	Terminated       Status = "Terminated"
	Hold             Status = "Hold"
	Resume           Status = "Resume"
	SessionCancelled Status = "SessionCancelled"
	Declined         Status = "Declined"
	Failed           Status = "Failed"
	Waiting          Status = "Waiting"
	NoAnswer         Status = "NoAnswer"
	NotReachable     Status = "NotReachable"
	Busy             Status = "Busy"
)

var allStatuses = []Status{Initial, InProgress, Ringing, Proceeding, Connected, Terminated, Hold, Resume,
	SessionCancelled, Declined, Failed, Waiting, NoAnswer, NotReachable, Busy}

// ParseStatus returns the status named s; false for anything else (the
// names are case-sensitive, as in the spec's enum).
func ParseStatus(s string) (Status, bool) {
	for _, st := range allStatuses {
		if string(st) == s {
			return st, true
		}
	}
	return "", false
}

// Terminal reports whether a session in status s is over.
func (s Status) Terminal() bool {
	switch s {
	case Terminated, SessionCancelled, Declined, Failed, NoAnswer, NotReachable, Busy:
		return true
	}
	return false
}

// Established reports whether the call has been answered and goes on
// (Connected, or held and resumed since).
func (s Status) Established() bool {
	return s == Connected || s == Hold || s == Resume
}

// Early reports whether the call is being set up (not answered, not over).
func (s Status) Early() bool {
	switch s {
	case Initial, InProgress, Ringing, Proceeding, Waiting:
		return true
	}
	return false
}
