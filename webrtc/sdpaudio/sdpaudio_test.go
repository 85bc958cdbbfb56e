package sdpaudio

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// A carrier's offer: session-level c=, static and dynamic payload types,
// telephone-event, ptime, a video line we must reject.
const carrierOffer = "v=0\r\n" +
	"o=- 4242 7 IN IP4 198.51.100.7\r\n" +
	"s=-\r\n" +
	"c=IN IP4 198.51.100.7\r\n" +
	"t=0 0\r\n" +
	"m=video 5002 RTP/AVP 96\r\n" +
	"a=rtpmap:96 H264/90000\r\n" +
	"m=audio 5004 RTP/AVP 8 0 101\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\n" +
	"a=fmtp:101 0-15\r\n" +
	"a=ptime:20\r\n" +
	"a=rtcp:5009\r\n" +
	"a=sendonly\r\n"

// Chromium 156's offer, trimmed (notes/media-measurements.md §5.2).
const chromeOffer = "v=0\r\n" +
	"o=- 1785632452 2 IN IP4 127.0.0.1\r\n" +
	"s=-\r\n" +
	"t=0 0\r\n" +
	"a=group:BUNDLE 0\r\n" +
	"a=msid-semantic: WMS\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n" +
	"c=IN IP4 0.0.0.0\r\n" +
	"a=rtcp:9 IN IP4 0.0.0.0\r\n" +
	"a=ice-ufrag:abcd\r\n" +
	"a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n" +
	"a=fingerprint:sha-256 AA:BB\r\n" +
	"a=setup:actpass\r\n" +
	"a=mid:0\r\n" +
	"a=sendrecv\r\n" +
	"a=rtcp-mux\r\n" +
	"a=rtpmap:111 opus/48000/2\r\n" +
	"a=fmtp:111 minptime=10;useinbandfec=1\r\n" +
	"a=rtpmap:63 red/48000/2\r\n" +
	"a=rtpmap:9 G722/8000\r\n" +
	"a=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:8 PCMA/8000\r\n" +
	"a=rtpmap:13 CN/8000\r\n" +
	"a=rtpmap:110 telephone-event/48000\r\n" +
	"a=rtpmap:126 telephone-event/8000\r\n"

func TestParseCarrierOffer(t *testing.T) {
	d, err := Parse(carrierOffer)
	if err != nil {
		t.Fatal(err)
	}
	a := d.Audio
	if a.Index != 1 || a.Addr != netip.MustParseAddr("198.51.100.7") || a.Port != 5004 || a.Proto != "RTP/AVP" {
		t.Errorf("stream %+v", a)
	}
	if len(a.Formats) != 3 || !a.Formats[0].Is("PCMA", 8000) || !a.Formats[1].Is("pcmu", 8000) {
		t.Errorf("formats %+v", a.Formats)
	}
	if te, ok := a.Find("telephone-event", 8000); !ok || te.PayloadType != 101 || te.Fmtp != "0-15" {
		t.Errorf("telephone-event %+v %v", te, ok)
	}
	if a.Direction != SendOnly || a.Ptime != 20 || a.RTCPPort != 5009 || a.RTCPMux {
		t.Errorf("attributes %+v", a)
	}
	if d.OriginID != 4242 || d.OriginVersion != 7 || len(d.Streams) != 2 {
		t.Errorf("description %+v", d)
	}
}

func TestParseChromeOffer(t *testing.T) {
	d, err := Parse(chromeOffer)
	if err != nil {
		t.Fatal(err)
	}
	a := d.Audio
	if !a.RTCPMux || !a.ICE || a.Setup != "actpass" || a.Fingerprint == "" || a.Proto != "UDP/TLS/RTP/SAVPF" {
		t.Errorf("webrtc attributes %+v", a)
	}
	opus, ok := a.Find("opus", 48000)
	if !ok || opus.PayloadType != 111 || opus.Channels != 2 || !strings.Contains(opus.Fmtp, "useinbandfec=1") {
		t.Errorf("opus %+v", opus)
	}
	if te, ok := a.Find("telephone-event", 48000); !ok || te.PayloadType != 110 {
		t.Errorf("te/48000 %+v", te)
	}
}

func TestParseRejects(t *testing.T) {
	for name, c := range map[string]struct {
		raw  string
		want error
	}{
		"garbage":           {"hello world", ErrBadSDP},
		"empty":             {"", ErrBadSDP},
		"no audio":          {strings.Replace(carrierOffer, "m=audio 5004", "m=text 5004", 1), ErrNoAudio},
		"audio port 0":      {strings.Replace(carrierOffer, "m=audio 5004", "m=audio 0", 1), ErrNoAudio},
		"hostname":          {strings.Replace(carrierOffer, "IN IP4 198.51.100.7\r\nt=", "IN IP4 sbc.example.net\r\nt=", 1), ErrBadSDP},
		"bad payload type":  {strings.Replace(carrierOffer, "RTP/AVP 8 0 101", "RTP/AVP 8 x 101", 1), ErrBadSDP},
		"payload type >127": {strings.Replace(carrierOffer, "RTP/AVP 8 0 101", "RTP/AVP 8 0 200", 1), ErrBadSDP},
		"no address":        {strings.Replace(carrierOffer, "c=IN IP4 198.51.100.7\r\n", "", 1), ErrBadSDP},
	} {
		if _, err := Parse(c.raw); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// An answer has one line per offered line in the offer's order, the
// non-audio ones rejected, and parses back to what it was given.
func TestAnswerMirrorsOfferStreams(t *testing.T) {
	offer, err := Parse(carrierOffer)
	if err != nil {
		t.Fatal(err)
	}
	l := Local{OriginID: 9, OriginVersion: 1, Addr: netip.MustParseAddr("192.0.2.1"), Port: 30000,
		Formats:   []Format{{PayloadType: 8, Name: "PCMA", ClockRate: 8000}, {PayloadType: 101, Name: "telephone-event", ClockRate: 8000, Fmtp: "0-15"}},
		Direction: offer.Audio.Direction.Reverse(), Ptime: 20}
	raw := Answer(offer, l)
	if !strings.Contains(raw, "m=video 0 RTP/AVP 96\r\n") {
		t.Errorf("video not rejected:\n%s", raw)
	}
	back, err := Parse(raw)
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	a := back.Audio
	if a.Index != 1 || a.Port != 30000 || a.Direction != RecvOnly || a.RTCPPort != 0 || len(a.Formats) != 2 || a.Formats[1].Fmtp != "0-15" {
		t.Errorf("answer parsed back as %+v", a)
	}
}

func TestOfferWithRTCPPortAndMux(t *testing.T) {
	raw := Offer(Local{OriginID: 1, OriginVersion: 1, Addr: netip.MustParseAddr("2001:db8::1"), Port: 4000, RTCPPort: 4100, RTCPMux: true,
		Formats: []Format{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}}, Direction: Inactive})
	d, err := Parse(raw)
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if a := d.Audio; !a.Addr.Is6() || a.RTCPPort != 4100 || !a.RTCPMux || a.Direction != Inactive {
		t.Errorf("parsed back %+v", a)
	}
}

func TestOfferWithDTLS(t *testing.T) {
	raw := Offer(Local{OriginID: 1, OriginVersion: 1, Addr: netip.MustParseAddr("192.0.2.9"), Port: 4000, RTCPMux: true,
		Proto: "UDP/TLS/RTP/SAVP", Fingerprint: "sha-256 AA:BB", Setup: "actpass",
		Formats: []Format{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}}})
	d, err := Parse(raw)
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if a := d.Audio; a.Proto != "UDP/TLS/RTP/SAVP" || a.Fingerprint != "sha-256 AA:BB" || a.Setup != "actpass" {
		t.Errorf("parsed back %+v", a)
	}
}

func TestDirections(t *testing.T) {
	for _, c := range []struct{ want, other, got Direction }{
		{SendRecv, SendRecv, SendRecv},
		{SendRecv, SendOnly, RecvOnly},
		{SendRecv, RecvOnly, SendOnly},
		{SendRecv, Inactive, Inactive},
		{SendOnly, SendOnly, Inactive},
		{RecvOnly, SendRecv, RecvOnly},
	} {
		if got := Combine(c.want, c.other); got != c.got {
			t.Errorf("Combine(%v, %v) = %v, want %v", c.want, c.other, got, c.got)
		}
	}
	for _, d := range []Direction{SendRecv, SendOnly, RecvOnly, Inactive} {
		if back, ok := ParseDirection(d.String()); !ok || back != d {
			t.Errorf("%v does not parse back", d)
		}
	}
}

// Whatever arrives, Parse returns an error or a description whose audio
// stream answers and re-parses consistently.
func FuzzParse(f *testing.F) {
	f.Add(carrierOffer)
	f.Add(chromeOffer)
	f.Add("v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n")
	f.Fuzz(func(t *testing.T, raw string) {
		d, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrBadSDP) && !errors.Is(err, ErrNoAudio) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if d.Audio.Index < 0 || d.Audio.Index >= len(d.Streams) || d.Audio.Port == 0 || !d.Audio.Addr.IsValid() {
			t.Fatalf("inconsistent description %+v", d)
		}
		answer := Answer(d, Local{Addr: netip.MustParseAddr("192.0.2.1"), Port: 1000, Formats: d.Audio.Formats, Direction: d.Audio.Direction.Reverse()})
		back, err := Parse(answer)
		if err != nil {
			// Names from the offer are echoed as they were; only an odd
			// encoding name or media token may make the answer unreadable.
			return
		}
		if back.Audio.Index != d.Audio.Index || len(back.Streams) != len(d.Streams) {
			t.Fatalf("answer has stream %d of %d, offer %d of %d", back.Audio.Index, len(back.Streams), d.Audio.Index, len(d.Streams))
		}
	})
}
