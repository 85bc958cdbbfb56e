// Package rtpwire reads and rewrites RTP packets in place, in the buffers
// they arrived in: the relay path parses a header, changes SSRC, sequence
// number, timestamp and payload type, and sends the same bytes on, with no
// allocation (RFC 3550 §5.1).
package rtpwire

import (
	"encoding/binary"
	"errors"
)

// FixedHeaderLen is the length of an RTP header without CSRCs or extension.
const FixedHeaderLen = 12

var (
	// ErrShort means the packet is shorter than its header says.
	ErrShort = errors.New("rtp packet too short")
	// ErrVersion means the version field is not 2.
	ErrVersion = errors.New("rtp version is not 2")
	// ErrPadding means the padding count is zero or longer than the payload.
	ErrPadding = errors.New("rtp padding invalid")
)

// Header is what the media plane needs of a parsed RTP packet, with the
// offsets of its payload in the buffer it was parsed from.
type Header struct {
	Marker         bool
	PayloadType    uint8
	SequenceNumber uint16
	Timestamp      uint32
	SSRC           uint32
	// PayloadStart and PayloadEnd delimit the payload: after CSRCs and the
	// header extension, before any padding.
	PayloadStart, PayloadEnd int
}

// Parse validates b as an RTP packet (version 2, CSRC list, extension and
// padding within bounds) and returns its header.
func Parse(b []byte) (Header, error) {
	if len(b) < FixedHeaderLen {
		return Header{}, ErrShort
	}
	if b[0]>>6 != 2 {
		return Header{}, ErrVersion
	}
	start := FixedHeaderLen + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 { // RFC 3550 §5.3.1: 4 bytes, then length×4 bytes
		if len(b) < start+4 {
			return Header{}, ErrShort
		}
		start += 4 + 4*int(binary.BigEndian.Uint16(b[start+2:]))
	}
	end := len(b)
	if start > end {
		return Header{}, ErrShort
	}
	if b[0]&0x20 != 0 { // the last byte counts the padding, itself included
		pad := int(b[len(b)-1])
		if pad == 0 || end-pad < start {
			return Header{}, ErrPadding
		}
		end -= pad
	}
	return Header{
		Marker:         b[1]&0x80 != 0,
		PayloadType:    b[1] & 0x7f,
		SequenceNumber: binary.BigEndian.Uint16(b[2:]),
		Timestamp:      binary.BigEndian.Uint32(b[4:]),
		SSRC:           binary.BigEndian.Uint32(b[8:]),
		PayloadStart:   start,
		PayloadEnd:     end,
	}, nil
}

// Rewrite turns the packet h was parsed from into a packet with a plain
// 12-byte header (no CSRCs, extension or padding: what a SIP peer expects
// of a relay, and what the other leg negotiated nothing for) carrying the
// given fields and the same payload. It moves the 12 header bytes up to the
// payload instead of moving the payload, and returns the packet's new
// bounds within b.
func Rewrite(b []byte, h Header, payloadType uint8, marker bool, seq uint16, ts, ssrc uint32) []byte {
	start := h.PayloadStart - FixedHeaderLen
	out := b[start:h.PayloadEnd]
	PutHeader(out, payloadType, marker, seq, ts, ssrc)
	return out
}

// PutHeader writes a plain 12-byte RTP header into b[:12].
func PutHeader(b []byte, payloadType uint8, marker bool, seq uint16, ts, ssrc uint32) {
	_ = b[FixedHeaderLen-1]
	b[0] = 2 << 6
	b[1] = payloadType & 0x7f
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
}

// IsRTCP tells an RTCP packet from an RTP packet sharing one port (RFC 5761
// §4: RTCP packet types 192-223 fall on RTP payload types 64-95, which are
// not used for RTP).
func IsRTCP(b []byte) bool {
	return len(b) >= 2 && b[0]>>6 == 2 && b[1] >= 192 && b[1] <= 223
}
