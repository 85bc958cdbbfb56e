// Package sdpaudio reads the audio stream of an SDP offer or answer (RFC
// 4566, RFC 3264) into what the media plane decides on: address, port,
// transport, payload formats in order of preference, direction, RTCP
// port; and writes the plain RTP/AVP offers and answers of the SIP leg.
// Everything else in an SDP is left to pion (WebRTC leg) or echoed back
// rejected (other streams of a SIP offer).
package sdpaudio

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

var (
	// ErrBadSDP means the text is not an SDP the media plane can read.
	ErrBadSDP = errors.New("malformed sdp")
	// ErrNoAudio means the SDP has no audio stream with a port.
	ErrNoAudio = errors.New("sdp has no active audio stream")
)

// Format is one payload format of a media line.
type Format struct {
	PayloadType uint8
	Name        string // encoding name as in the rtpmap, e.g. "PCMU", "opus", "telephone-event"
	ClockRate   uint32
	Channels    uint8
	Fmtp        string
}

// Is tells whether f is the encoding name (case-insensitive, RFC 4855 §3)
// at the clock rate.
func (f Format) Is(name string, clockRate uint32) bool {
	return strings.EqualFold(f.Name, name) && f.ClockRate == clockRate
}

// StreamInfo is what an answer must echo of a media line it rejects (RFC
// 3264 §6: one answer line per offered line, in order).
type StreamInfo struct {
	Media, Proto string
	Formats      []string
}

// Audio is the first audio stream with a non-zero port.
type Audio struct {
	Index   int        // position among the SDP's media lines
	Addr    netip.Addr // connection address (media or session level)
	Port    uint16
	Proto   string // "RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", …
	Formats []Format
	// Direction is the stream's direction attribute, media level first,
	// then session level, sendrecv by default.
	Direction Direction
	// RTCPPort is the a=rtcp port (RFC 3605); zero means Port+1.
	RTCPPort uint16
	// RTCPMux is a=rtcp-mux (RFC 5761): RTCP on the RTP port.
	RTCPMux bool
	// Ptime is a=ptime in milliseconds, zero when absent.
	Ptime int
	// Fingerprint and Setup are the DTLS-SRTP attributes (RFC 8122, RFC
	// 4145), media level first, then session level.
	Fingerprint, Setup string
	// ICE tells whether the stream carries ICE credentials.
	ICE bool
}

// Find returns the first format with the encoding name at the clock rate.
func (a *Audio) Find(name string, clockRate uint32) (Format, bool) {
	for _, f := range a.Formats {
		if f.Is(name, clockRate) {
			return f, true
		}
	}
	return Format{}, false
}

// Description is a parsed SDP: its audio stream and what an answer needs
// to reject the other streams.
type Description struct {
	Audio   Audio
	Streams []StreamInfo
	// Origin identifies the SDP's author and version (o= session id and
	// version): an unchanged version means an unchanged description
	// (RFC 3264 §8).
	OriginID, OriginVersion uint64
}

// staticFormats are the RFC 3551 §6 payload types a line may use without
// an rtpmap, among those the media plane knows.
var staticFormats = map[uint8]Format{
	0: {PayloadType: 0, Name: "PCMU", ClockRate: 8000, Channels: 1},
	8: {PayloadType: 8, Name: "PCMA", ClockRate: 8000, Channels: 1},
	9: {PayloadType: 9, Name: "G722", ClockRate: 8000, Channels: 1},
}

// Parse reads an SDP and its first audio stream with a non-zero port.
// Errors wrap ErrBadSDP or ErrNoAudio.
func Parse(raw string) (d *Description, err error) {
	if !strings.HasPrefix(raw, "v=0") { // RFC 4566 §5: the first line, and the only version
		return nil, fmt.Errorf("%w: does not start with v=0", ErrBadSDP)
	}
	var s sdp.SessionDescription
	if err := unmarshal(&s, raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	d = &Description{OriginID: s.Origin.SessionID, OriginVersion: s.Origin.SessionVersion}
	sessionAddr, err := connectionAddr(s.ConnectionInformation)
	if err != nil {
		return nil, err
	}
	sessionDir := directionOf(s.Attributes, SendRecv)
	found := false
	for i, m := range s.MediaDescriptions {
		d.Streams = append(d.Streams, StreamInfo{Media: m.MediaName.Media, Proto: strings.Join(m.MediaName.Protos, "/"), Formats: m.MediaName.Formats})
		if found || m.MediaName.Media != "audio" || m.MediaName.Port.Value == 0 {
			continue
		}
		a, err := parseAudio(m, sessionAddr, sessionDir, s.Attributes)
		if err != nil {
			return nil, err
		}
		a.Index = i
		d.Audio, found = a, true
	}
	if !found {
		return nil, ErrNoAudio
	}
	return d, nil
}

// unmarshal runs pion's parser, turning a panic on hostile input into an
// error: the text comes from the network.
func unmarshal(s *sdp.SessionDescription, raw string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parser panic: %v", r)
		}
	}()
	return s.UnmarshalString(raw)
}

func parseAudio(m *sdp.MediaDescription, sessionAddr netip.Addr, sessionDir Direction, sessionAttrs []sdp.Attribute) (Audio, error) {
	a := Audio{Proto: strings.Join(m.MediaName.Protos, "/"), Addr: sessionAddr}
	if m.MediaName.Port.Value < 1 || m.MediaName.Port.Value > 65535 {
		return a, fmt.Errorf("%w: port %d", ErrBadSDP, m.MediaName.Port.Value)
	}
	a.Port = uint16(m.MediaName.Port.Value)
	if m.ConnectionInformation != nil {
		addr, err := connectionAddr(m.ConnectionInformation)
		if err != nil {
			return a, err
		}
		a.Addr = addr
	}
	a.Direction = directionOf(m.Attributes, sessionDir)
	formats := map[uint8]int{} // payload type -> index in a.Formats
	for _, f := range m.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			return a, fmt.Errorf("%w: payload type %q", ErrBadSDP, f)
		}
		format, known := staticFormats[uint8(pt)]
		if !known {
			format = Format{PayloadType: uint8(pt)}
		}
		if _, dup := formats[uint8(pt)]; dup {
			continue
		}
		formats[uint8(pt)] = len(a.Formats)
		a.Formats = append(a.Formats, format)
	}
	for _, attr := range m.Attributes {
		switch attr.Key {
		case "rtpmap", "fmtp":
			pt, rest, ok := strings.Cut(attr.Value, " ")
			n, err := strconv.ParseUint(pt, 10, 7)
			if !ok || err != nil {
				continue // RFC 4566 §5.13: unknown or broken attributes are ignored
			}
			i, known := formats[uint8(n)]
			if !known {
				continue
			}
			f := &a.Formats[i]
			if attr.Key == "fmtp" {
				f.Fmtp = strings.TrimSpace(rest)
				continue
			}
			parseRtpmap(f, strings.TrimSpace(rest))
		case "rtcp":
			port, _, _ := strings.Cut(attr.Value, " ")
			if n, err := strconv.ParseUint(port, 10, 16); err == nil && n > 0 {
				a.RTCPPort = uint16(n)
			}
		case "rtcp-mux":
			a.RTCPMux = true
		case "ptime":
			if n, err := strconv.Atoi(strings.TrimSpace(attr.Value)); err == nil && n > 0 && n <= 1000 {
				a.Ptime = n
			}
		case "fingerprint":
			a.Fingerprint = attr.Value
		case "setup":
			a.Setup = attr.Value
		case "ice-ufrag":
			a.ICE = true
		}
	}
	for _, attr := range sessionAttrs {
		switch {
		case attr.Key == "fingerprint" && a.Fingerprint == "":
			a.Fingerprint = attr.Value
		case attr.Key == "setup" && a.Setup == "":
			a.Setup = attr.Value
		case attr.Key == "ice-ufrag":
			a.ICE = true
		}
	}
	if !a.Addr.IsValid() {
		return a, fmt.Errorf("%w: audio stream without connection address", ErrBadSDP)
	}
	return a, nil
}

// parseRtpmap reads "<encoding name>/<clock rate>[/<channels>]".
func parseRtpmap(f *Format, v string) {
	parts := strings.Split(v, "/")
	if len(parts) < 2 {
		return
	}
	clock, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return
	}
	f.Name, f.ClockRate, f.Channels = parts[0], uint32(clock), 1
	if len(parts) > 2 {
		if ch, err := strconv.ParseUint(parts[2], 10, 8); err == nil {
			f.Channels = uint8(ch)
		}
	}
}

// connectionAddr reads a c= line: "IN IP4 192.0.2.1" (a multicast TTL
// suffix is tolerated and dropped). No c= line gives the zero Addr.
func connectionAddr(c *sdp.ConnectionInformation) (netip.Addr, error) {
	if c == nil || c.Address == nil {
		return netip.Addr{}, nil
	}
	host, _, _ := strings.Cut(c.Address.Address, "/")
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: connection address %q: not an IP address", ErrBadSDP, c.Address.Address)
	}
	return addr.Unmap(), nil
}

func directionOf(attrs []sdp.Attribute, fallback Direction) Direction {
	for _, a := range attrs {
		if d, ok := ParseDirection(a.Key); ok {
			return d
		}
	}
	return fallback
}
