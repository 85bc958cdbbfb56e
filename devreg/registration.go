// Package devreg keeps the WebRTC device registrations of the CAMARA
// webrtc-registration API: a device registered for a phone number until it
// expires, is deleted, or the network ends it. When the number's range
// needs a SIP registration at the telco, the number is registered upstream
// while at least one of its devices is.
package devreg

import (
	"errors"
	"time"
)

// Registration is one device registered for a number.
type Registration struct {
	ID          string
	DeviceID    string
	PhoneNumber string
	Subject     string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	Upstream    bool // the number is registered at the telco's registrar for it
}

// End reasons of the registration-ends event (CAMARA webrtc-events).
const (
	ReasonExpired           = "REGISTRATION_EXPIRED"
	ReasonNetworkTerminated = "NETWORK_TERMINATED"
)

// Errors, mapped once to API codes by the HTTP layer.
var (
	ErrInvalidDevice = errors.New("deviceId must be a UUID")
	ErrOutOfRange    = errors.New("registrationExpireTime is too soon")
	ErrNotFound      = errors.New("no such registration")
	ErrNoNumber      = errors.New("the token names no phone number")
)
