// Package cdr holds the call detail record: the one row a finished call leaves
// behind. It is a plain value type shared by the B2BUA, which fills it, and the
// store, which persists it, so neither has to import the other.
package cdr

import "time"

// HangupParty says who ended a call.
type HangupParty string

// The parties that can end a call.
const (
	HangupCaller  HangupParty = "caller"  // the incoming leg sent BYE or CANCEL
	HangupCallee  HangupParty = "callee"  // an outgoing leg sent BYE or a final error
	HangupGateway HangupParty = "gateway" // callpath ended it: timeout, drain, error
)

// Leg is one SIP dialog of a call as the CDR remembers it.
type Leg struct {
	Index  int    // 1 is the incoming leg; 2, 3, 4 are the ones callpath created
	CallID string // the Call-ID of this leg's dialog
	Peer   string // the remote URI of the leg (Request-URI for outgoing legs, From for the incoming one)
}

// Record is one finished call.
type Record struct {
	CallID     string // Call-ID of the incoming leg (leg 1)
	SessionID  string // RFC 7989 Session-ID (the caller's UUID)
	From       string // calling number or user part
	To         string // called number or user part
	Legs       []Leg
	StartedAt  time.Time // INVITE received
	AnsweredAt time.Time // 2xx relayed to the caller; zero when never answered
	EndedAt    time.Time
	FinalCode  int         // final response code of the call's INVITE (200 for answered calls)
	HangupBy   HangupParty // who ended it
	Reason     string      // short reason: "bye", "cancel", "no-answer", "486 Busy Here", "drain", ...
}

// Duration is the talk time: from answer to end, zero for unanswered calls.
func (r Record) Duration() time.Duration {
	if r.AnsweredAt.IsZero() || r.EndedAt.Before(r.AnsweredAt) {
		return 0
	}
	return r.EndedAt.Sub(r.AnsweredAt)
}
