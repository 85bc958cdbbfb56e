package b2bua

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
)

// NullUUID is the RFC 7989 §6 placeholder for a UUID not yet known.
const NullUUID = "00000000000000000000000000000000"

// SessionIDHeader is the RFC 7989 header name.
const SessionIDHeader = "Session-ID"

var errSessionID = errors.New("malformed Session-ID")

// SessionID is an RFC 7989 end-to-end session identifier. Each endpoint owns
// one UUID; a request carries the sender's UUID as Local and the other end's as
// Remote, so intermediaries such as callpath pass the pair on unchanged.
type SessionID struct {
	Local  string // sess-uuid of the sender of the message
	Remote string // the "remote" parameter; NullUUID when not yet known
}

// ParseSessionID reads a Session-ID header value:
//
//	session-id-value = sess-uuid *( SEMI sess-id-param )
//	sess-uuid        = 32(DIGIT / %x61-66)   ; lower-case hex
//	sess-id-param    = remote-param / generic-param
//
// Upper-case hex is accepted and folded (RFC 7989 §4 asks receivers to compare
// case-insensitively); anything else is an error.
func ParseSessionID(v string) (SessionID, error) {
	v = strings.TrimSpace(v)
	uuid, params, _ := strings.Cut(v, ";")
	uuid = strings.TrimSpace(uuid)
	if !isSessUUID(uuid) {
		return SessionID{}, errSessionID
	}
	sid := SessionID{Local: strings.ToLower(uuid), Remote: NullUUID}
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, val, hasVal := strings.Cut(strings.TrimSpace(p), "=")
		if !strings.EqualFold(strings.TrimSpace(name), "remote") {
			continue
		}
		val = strings.TrimSpace(val)
		if !hasVal || !isSessUUID(val) {
			return SessionID{}, errSessionID
		}
		sid.Remote = strings.ToLower(val)
	}
	return sid, nil
}

func isSessUUID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// String formats the header value, always with the remote parameter (RFC 7989
// §5: an intermediary that knows both UUIDs sends both).
func (s SessionID) String() string {
	return s.Local + ";remote=" + s.Remote
}

// Reversed is the same session seen from the other end: what a response or a
// request in the opposite direction carries.
func (s SessionID) Reversed() SessionID {
	return SessionID{Local: s.Remote, Remote: s.Local}
}

// NewSessionUUID returns a random version 4 UUID as 32 lower-case hex digits.
func NewSessionUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:])
}
