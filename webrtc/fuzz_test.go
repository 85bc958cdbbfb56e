package webrtc

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"callpath/webrtc/sdpaudio"
)

const fuzzBrowserOffer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 110 126\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n" +
	"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n"

const fuzzSIPSDP = "v=0\r\no=- 4 7 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n" +
	"m=audio 5004 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"

// Codec negotiation, fed any pair of readable SDPs in either call
// direction, either refuses with a typed error or agrees on codecs the
// legs can carry: relay only between equal G.711 codecs, transcoding only
// from Opus when this build can, the SIP side's codec one that was offered.
func FuzzNegotiation(f *testing.F) {
	eng, err := NewEngine(context.Background(), Config{ICEListen: "127.0.0.1:0", RTPListenIP: "127.0.0.1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = eng.Close(context.Background()) })
	f.Add(fuzzBrowserOffer, fuzzSIPSDP)
	f.Add(strings.Replace(fuzzBrowserOffer, "111 0 8", "111", 1), strings.Replace(fuzzSIPSDP, "8 0 101", "0", 1))
	f.Fuzz(func(t *testing.T, webSDP, sipSDP string) {
		web, errWeb := sdpaudio.Parse(webSDP)
		sip, errSIP := sdpaudio.Parse(sipSDP)
		if errWeb != nil || errSIP != nil {
			return
		}
		typed := func(err error) {
			if !errors.Is(err, ErrNoCommonCodec) && !errors.Is(err, ErrUnsupportedTransport) {
				t.Fatalf("untyped error %v", err)
			}
		}
		// Browser calls SIP.
		if offered, err := eng.sipOfferFormats(&web.Audio); err != nil {
			typed(err)
		} else if c, err := eng.codecsForSIPAnswer(&web.Audio, &sip.Audio, offered); err != nil {
			typed(err)
		} else {
			checkCodecs(t, eng, c)
			if !offeredName(offered, c.sip.Name) {
				t.Fatalf("SIP codec %s was not offered", c.sip.Name)
			}
		}
		// SIP calls browser.
		if _, err := eng.webrtcOfferCodecs(&sip.Audio); err != nil {
			typed(err)
		} else if c, err := eng.codecsForWebRTCAnswer(&sip.Audio, &web.Audio); err != nil {
			typed(err)
		} else {
			checkCodecs(t, eng, c)
		}
		if _, err := sipTransport(&sip.Audio); err != nil {
			typed(err)
		}
	})
}

func checkCodecs(t *testing.T, eng *Engine, c codecs) {
	t.Helper()
	g711 := func(f sdpaudio.Format) bool { return f.Is(codecPCMU, 8000) || f.Is(codecPCMA, 8000) }
	switch c.mode {
	case ModeRelay:
		// Both legs G.711: the same law, or the other one converted in
		// place (a PCMU-only browser and an A-law-only TAS).
		if !g711(c.sip) || !g711(c.web) {
			t.Fatalf("relay between %+v and %+v", c.sip, c.web)
		}
	case ModeTranscode:
		if !g711(c.sip) || !c.web.Is(codecOpus, 48000) || !eng.opusUsable() {
			t.Fatalf("transcode between %+v and %+v (opus usable: %v)", c.sip, c.web, eng.opusUsable())
		}
	default:
		t.Fatalf("no mode")
	}
	if len(c.webTE) > 0 && c.webTE[0].Name != telephoneEvent {
		t.Fatalf("telephone-event %+v", c.webTE[0])
	}
}

// The packet paths take any datagram from the SIP side and any packet from
// the browser's track (RTP, RFC 4733 events, garbage) without crashing.
func FuzzPacketPaths(f *testing.F) {
	r := newRelayRig(f)
	f.Add(r.phonePacket, true)
	f.Add(r.browserPacket, false)
	te := append([]byte(nil), r.phonePacket[:12]...)
	te[1] = 101
	f.Add(append(te, 1, 0x8a, 3, 0x20), true)
	te2 := append([]byte(nil), te...)
	te2[1] = 126
	f.Add(append(te2, 11, 0x0a, 0, 160), false)
	buf := make([]byte, 1500)
	f.Fuzz(func(t *testing.T, pkt []byte, fromSIP bool) {
		if len(pkt) > len(buf) {
			return
		}
		in := buf[:copy(buf, pkt)]
		if fromSIP {
			r.fromSIP.packet(in, r.phoneAddr)
			r.fromSIP.packet(in, netip.MustParseAddrPort("127.0.0.1:9"))
			return
		}
		r.toSIP.packet(in)
	})
}
