// Package dtmf reads and writes RFC 4733 telephone-event payloads, turns a
// stream of them into digits, and makes the packet sequence of a digit.
package dtmf

import (
	"encoding/binary"
	"errors"
)

// EventLen is the length of one named-event payload (RFC 4733 §2.3).
const EventLen = 4

var (
	// ErrShort means the payload is shorter than one event.
	ErrShort = errors.New("telephone-event payload shorter than 4 bytes")
	// ErrUnknownEvent means the event code is not a DTMF digit (RFC 4733
	// §3.2: codes 0-15; 16, flash, and the rest are not carried).
	ErrUnknownEvent = errors.New("telephone-event code is not a DTMF digit")
)

// Event is one RFC 4733 §2.3 named-event payload.
type Event struct {
	Code   uint8 // 0-9, 10 '*', 11 '#', 12-15 'A'-'D'
	End    bool
	Volume uint8 // 0 to 63: -dBm0, so larger is quieter
	// Duration is in units of the telephone-event's clock, from the
	// event's RTP timestamp (its start) to the end of this packet.
	Duration uint16
}

// Parse reads the first event of a telephone-event payload. Payloads may
// carry more (redundant earlier events, §2.5.1.5 / RFC 2198); the first
// is the current one.
func Parse(payload []byte) (Event, error) {
	if len(payload) < EventLen {
		return Event{}, ErrShort
	}
	e := Event{
		Code:     payload[0],
		End:      payload[1]&0x80 != 0,
		Volume:   payload[1] & 0x3f,
		Duration: binary.BigEndian.Uint16(payload[2:]),
	}
	if e.Code > 15 {
		return e, ErrUnknownEvent
	}
	return e, nil
}

// Put writes e into b[:EventLen] (the R bit zero, as §2.3 requires of
// senders).
func (e Event) Put(b []byte) {
	_ = b[EventLen-1]
	b[0] = e.Code
	b[1] = e.Volume & 0x3f
	if e.End {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], e.Duration)
}

// Rescale converts a duration between two telephone-event clocks (8 kHz on
// a G.711 leg, 48 kHz beside Opus), saturating at the field's maximum.
func Rescale(duration uint16, fromClock, toClock uint32) uint16 {
	if fromClock == toClock || fromClock == 0 {
		return duration
	}
	return uint16(min(uint64(duration)*uint64(toClock)/uint64(fromClock), 0xffff))
}

const digits = "0123456789*#ABCD"

// Digit returns the character of a DTMF event code.
func Digit(code uint8) (rune, bool) {
	if int(code) >= len(digits) {
		return 0, false
	}
	return rune(digits[code]), true
}

// Code returns the event code of a DTMF character (0-9, *, #, A-D).
func Code(digit rune) (uint8, bool) {
	for i, d := range digits {
		if d == digit {
			return uint8(i), true
		}
	}
	return 0, false
}
