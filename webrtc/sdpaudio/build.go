package sdpaudio

import (
	"net/netip"
	"strconv"
	"strings"
)

// Local describes the media plane's side of a plain RTP/AVP audio stream,
// for an offer or an answer toward a SIP peer.
type Local struct {
	// OriginID and OriginVersion fill o=: one id per session, the version
	// raised with every changed description (RFC 3264 §8).
	OriginID, OriginVersion uint64
	Addr                    netip.Addr
	Port                    uint16
	Formats                 []Format
	Direction               Direction
	Ptime                   int
	// RTCPPort, when not Port+1, is announced with a=rtcp (RFC 3605).
	RTCPPort uint16
	// RTCPMux offers (or, in an answer, accepts) RTCP on the RTP port.
	RTCPMux bool
	// Proto is the offer's transport: "RTP/AVP" when empty, or
	// "UDP/TLS/RTP/SAVP" for DTLS-SRTP (RFC 5764 §8). Answers use the
	// offer's.
	Proto string
	// Fingerprint ("sha-256 AB:CD:…") and Setup ("actpass", "active",
	// "passive") describe our DTLS endpoint (RFC 8122, RFC 4145) when the
	// stream is DTLS-SRTP.
	Fingerprint, Setup string
}

// Offer writes an SDP offer with one audio stream.
func Offer(l Local) string {
	var b strings.Builder
	writeSession(&b, l)
	proto := l.Proto
	if proto == "" {
		proto = "RTP/AVP"
	}
	writeAudio(&b, l, proto)
	return b.String()
}

// Answer writes the answer to offer: the audio stream of the offer gets l,
// every other stream is rejected with port 0 (RFC 3264 §6).
func Answer(offer *Description, l Local) string {
	var b strings.Builder
	writeSession(&b, l)
	for i, s := range offer.Streams {
		if i == offer.Audio.Index {
			writeAudio(&b, l, offer.Audio.Proto)
			continue
		}
		b.WriteString("m=" + s.Media + " 0 " + s.Proto)
		for _, f := range s.Formats {
			b.WriteString(" " + f)
		}
		b.WriteString("\r\n")
	}
	return b.String()
}

func writeSession(b *strings.Builder, l Local) {
	ipv := "IP4"
	if l.Addr.Is6() {
		ipv = "IP6"
	}
	b.WriteString("v=0\r\n")
	b.WriteString("o=callpath " + strconv.FormatUint(l.OriginID, 10) + " " + strconv.FormatUint(l.OriginVersion, 10) + " IN " + ipv + " " + l.Addr.String() + "\r\n")
	b.WriteString("s=callpath\r\n")
	b.WriteString("c=IN " + ipv + " " + l.Addr.String() + "\r\n")
	b.WriteString("t=0 0\r\n")
}

func writeAudio(b *strings.Builder, l Local, proto string) {
	b.WriteString("m=audio " + strconv.Itoa(int(l.Port)) + " " + proto)
	for _, f := range l.Formats {
		b.WriteString(" " + strconv.Itoa(int(f.PayloadType)))
	}
	b.WriteString("\r\n")
	for _, f := range l.Formats {
		b.WriteString("a=rtpmap:" + strconv.Itoa(int(f.PayloadType)) + " " + f.Name + "/" + strconv.FormatUint(uint64(f.ClockRate), 10))
		if f.Channels > 1 {
			b.WriteString("/" + strconv.Itoa(int(f.Channels)))
		}
		b.WriteString("\r\n")
		if f.Fmtp != "" {
			b.WriteString("a=fmtp:" + strconv.Itoa(int(f.PayloadType)) + " " + f.Fmtp + "\r\n")
		}
	}
	if l.Ptime > 0 {
		b.WriteString("a=ptime:" + strconv.Itoa(l.Ptime) + "\r\n")
	}
	if l.RTCPPort != 0 && l.RTCPPort != l.Port+1 {
		b.WriteString("a=rtcp:" + strconv.Itoa(int(l.RTCPPort)) + "\r\n")
	}
	if l.RTCPMux {
		b.WriteString("a=rtcp-mux\r\n")
	}
	if l.Fingerprint != "" {
		b.WriteString("a=fingerprint:" + l.Fingerprint + "\r\n")
	}
	if l.Setup != "" {
		b.WriteString("a=setup:" + l.Setup + "\r\n")
	}
	b.WriteString("a=" + l.Direction.String() + "\r\n")
}
