package calls

import (
	"errors"
	"fmt"
)

// Role is the device's part in a session.
type Role int

const (
	// Originator: the device called (POST /sessions).
	Originator Role = iota + 1
	// Receiver: the device is called (session-invitation).
	Receiver
)

// Action is what the gateway does toward the SIP side for a status change
// a device asks for.
type Action int

const (
	// SendProgress sends 183 Session Progress with the device's answer
	// (early media).
	SendProgress Action = iota + 1
	// SendRinging sends 180 Ringing.
	SendRinging
	// SendAnswer sends 200 OK with the device's answer.
	SendAnswer
	// SendHold re-INVITEs the SIP side with the media on hold.
	SendHold
	// SendResume re-INVITEs the SIP side with the media flowing again.
	SendResume
)

// Errors of a status change, mapped by the CAMARA adapter to 400s.
var (
	ErrStatusNotAllowed = errors.New("status change not allowed")
	ErrAnswerRequired   = errors.New("an answer SDP is required")
	ErrSessionEnded     = errors.New("the session has ended")
)

// Change is a device's PUT /sessions/{id}/status.
type Change struct {
	Status Status
	Answer string // answer.sdp, if given
}

// Decide says what a device's status change does to a session in status
// current, in which the device has role and has (or has not) given its
// answer SDP already. Only the receiver sets up the call (InProgress,
// Ringing, Connected, as in the provider call flows); either side may hold
// and resume an established call.
func Decide(current Status, role Role, haveAnswer bool, c Change) (Action, error) {
	if current.Terminal() {
		return 0, fmt.Errorf("%w: it is %s", ErrSessionEnded, current)
	}
	notAllowed := func() (Action, error) {
		return 0, fmt.Errorf("%w: %s while the session is %s", ErrStatusNotAllowed, c.Status, current)
	}
	if current.Early() {
		if role != Receiver {
			return notAllowed() // the caller can only wait, or DELETE
		}
		switch c.Status {
		case InProgress:
			if c.Answer == "" && !haveAnswer {
				return 0, fmt.Errorf("%w with InProgress (early media)", ErrAnswerRequired)
			}
			return SendProgress, nil
		case Ringing:
			if current == Initial || current == InProgress {
				return SendRinging, nil
			}
		case Connected:
			if c.Answer == "" && !haveAnswer {
				return 0, fmt.Errorf("%w to answer with Connected", ErrAnswerRequired)
			}
			return SendAnswer, nil
		}
		return notAllowed()
	}
	switch {
	case c.Status == Hold && (current == Connected || current == Resume):
		return SendHold, nil
	case c.Status == Resume && current == Hold:
		return SendResume, nil
	}
	return notAllowed()
}
