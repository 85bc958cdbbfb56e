package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Protocol identifiers (see the package documentation).
const (
	Subprotocol     = "callpath.relay.v1"
	ProtocolVersion = 1
	// BearerPrefix marks the subprotocol that carries a browser's token.
	BearerPrefix = "bearer."
)

// Close codes of the relay beyond RFC 6455's (4000-4999 are the
// application's).
const (
	CloseReplaced    = 4001 // another connection took over the binding
	CloseBindingGone = 4002 // the binding expired or was deleted
)

// Message types.
const (
	TypeHello   = "hello"
	TypeEvent   = "event"
	TypeExpired = "expired"
	TypePong    = "pong"
	TypeAck     = "ack"
	TypePing    = "ping"
	TypeUnbind  = "unbind"
)

// Hello is the relay's first message on every connection.
type Hello struct {
	Type                 string         `json:"type"`
	Version              int            `json:"v"`
	BindingID            string         `json:"bindingId"`
	DeviceID             string         `json:"deviceId"`
	Sink                 string         `json:"sink"`
	SinkCredential       SinkCredential `json:"sinkCredential"`
	RelayToken           string         `json:"relayToken"`
	RelayTokenExpiresUtc string         `json:"relayTokenExpiresUtc"`
	AckWindow            int            `json:"ackWindow"`
	MaxMessageBytes      int64          `json:"maxMessageBytes"`
}

// SinkCredential is the CAMARA AccessTokenCredential a webrtc-events
// subscription takes as its sinkCredential.
type SinkCredential struct {
	CredentialType        string `json:"credentialType"` // "ACCESSTOKEN"
	AccessToken           string `json:"accessToken"`
	AccessTokenExpiresUtc string `json:"accessTokenExpiresUtc"`
	AccessTokenType       string `json:"accessTokenType"` // "bearer"
}

// EventMessage is the shape of an event frame, for clients in Go.
type EventMessage struct {
	Type  string          `json:"type"`
	Seq   int64           `json:"seq"`
	ID    string          `json:"id"`
	Event json.RawMessage `json:"event"`
	Count int             `json:"count,omitempty"` // expired messages
}

// ClientMessage is a message from the app.
type ClientMessage struct {
	Type string `json:"type"`
	Seq  int64  `json:"seq,omitempty"`
	ID   string `json:"id,omitempty"`
}

// maxEventIDLen bounds CloudEvent ids (the spec sets none; the relay keeps
// them in its store and in acknowledgements).
const maxEventIDLen = 1024

// ErrBadMessage is wrapped by every error of ParseClientMessage.
var ErrBadMessage = errors.New("bad message")

// ParseClientMessage reads one text frame from the app. Member names are
// matched exactly; unknown members are ignored (later versions may add
// some); unknown types are errors.
func ParseClientMessage(data []byte) (ClientMessage, error) {
	var m ClientMessage
	if !utf8.Valid(data) {
		return m, fmt.Errorf("%w: not UTF-8", ErrBadMessage)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return m, fmt.Errorf("%w: want a JSON object", ErrBadMessage)
	}
	if !json.Valid(data) {
		return m, fmt.Errorf("%w: not valid JSON", ErrBadMessage)
	}
	err := eachMember(data, func(key string, v []byte) error {
		if isNull(v) {
			return nil // as encoding/json: null leaves the zero value
		}
		var err error
		switch key {
		case "type":
			if m.Type, err = jsonString(v); err != nil {
				return fmt.Errorf("%w: type must be a string", ErrBadMessage)
			}
		case "seq":
			if m.Seq, err = jsonInt(v); err != nil {
				return fmt.Errorf("%w: seq must be a whole number", ErrBadMessage)
			}
		case "id":
			if m.ID, err = jsonString(v); err != nil {
				return fmt.Errorf("%w: id must be a string", ErrBadMessage)
			}
		}
		return nil
	})
	if err != nil {
		return ClientMessage{}, err
	}
	switch m.Type {
	case TypeAck:
		switch {
		case m.Seq < 0:
			return m, fmt.Errorf("%w: ack seq %d is negative", ErrBadMessage, m.Seq)
		case (m.Seq > 0) == (m.ID != ""):
			return m, fmt.Errorf("%w: an ack names either seq or id", ErrBadMessage)
		case len(m.ID) > maxEventIDLen:
			return m, fmt.Errorf("%w: ack id longer than %d bytes", ErrBadMessage, maxEventIDLen)
		}
	case TypePing, TypeUnbind:
	case "":
		return m, fmt.Errorf("%w: no type", ErrBadMessage)
	default:
		return m, fmt.Errorf("%w: unknown type %q", ErrBadMessage, m.Type)
	}
	return m, nil
}

// appendEventFrame appends the event message of one queued event; body is
// the CloudEvent as structured JSON (checked by ParseSinkEvent).
func appendEventFrame(dst []byte, seq int64, id string, body []byte) []byte {
	dst = append(dst, `{"type":"event","seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"id":`...)
	dst = appendJSONString(dst, id)
	dst = append(dst, `,"event":`...)
	dst = append(dst, body...)
	return append(dst, '}')
}

// eventFrameLen is an upper bound of appendEventFrame's output.
func eventFrameLen(id string, body []byte) int { return 48 + 20 + 6*len(id) + len(body) }

func expiredFrame(n int) []byte {
	return append(strconv.AppendInt([]byte(`{"type":"expired","count":`), int64(n), 10), '}')
}

var pongFrame = []byte(`{"type":"pong"}`)

// appendJSONString appends s (valid UTF-8) as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
