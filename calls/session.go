package calls

import (
	"errors"
	"time"
)

// Session is a media session as the webrtc-call-handling API shows it.
type Session struct {
	ID               string
	Owner            string // the subscriber (the token's phone number)
	RegistrationID   string // the device registration it belongs to
	Role             Role
	Originator       Address
	OriginatorName   string
	Receiver         Address
	ReceiverName     string
	Status           Status
	Offer            string // SDP: the device's (outgoing) or the gateway's (incoming)
	Answer           string // SDP: the other side's, once given
	ClientCorrelator string // echoed unchanged (r2.2)
	Reason           string // what the last change was, e.g. "180 Ringing"
	Sequence         int    // the sequenceNumber of the last session-status event
	CreatedAt        time.Time
	EndedAt          time.Time // zero while the session goes on
}

// Errors a media-session service returns, mapped once by the CAMARA
// adapter.
var (
	// ErrNotFound: no such session for this subscriber (another
	// subscriber's answers the same, never leaking that it exists).
	ErrNotFound = errors.New("media session not found")
	// ErrNotOriginator: the originatorAddress is not the token's number.
	ErrNotOriginator = errors.New("originatorAddress is not the subscriber's number")
	// ErrUnknownRegistration: the registrationId header names no live
	// registration of the subscriber.
	ErrUnknownRegistration = errors.New("registrationId names no live registration of the subscriber")
	// ErrBadOffer: the offer SDP cannot be used (garbage, or no codec we
	// can carry).
	ErrBadOffer = errors.New("the offer cannot be used")
)
