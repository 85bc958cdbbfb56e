package webrtc

import (
	"fmt"

	"callpath/webrtc/codec"
	"callpath/webrtc/sdpaudio"

	pion "github.com/pion/webrtc/v4"
)

// Encoding names as written in rtpmap lines.
const (
	codecPCMU      = "PCMU"
	codecPCMA      = "PCMA"
	codecOpus      = "opus"
	telephoneEvent = "telephone-event"
)

// Payload types the plane uses where it numbers dynamic formats itself:
// Chrome's numbers, so a browser's answer looks like its own offers.
const (
	ptOpus    = 111
	ptTE48000 = 110
	ptTE8000  = 126
	ptTESIP   = 101 // the usual number toward SIP peers
)

// Mode is how a session carries audio between its legs.
type Mode uint8

const (
	// ModeRelay passes G.711 packets through, rewriting headers only.
	ModeRelay Mode = iota + 1
	// ModeTranscode decodes and re-encodes: Opus on the WebRTC leg, G.711
	// on the SIP leg.
	ModeTranscode
)

// String returns the metric label of the mode.
func (m Mode) String() string {
	switch m {
	case ModeRelay:
		return "relay"
	case ModeTranscode:
		return "transcode"
	default:
		return "none"
	}
}

// codecs is what negotiation agreed for the two legs. Payload types are
// the ones each leg's remote side announced: what it expects to receive.
type codecs struct {
	mode  Mode
	sip   sdpaudio.Format // G.711 on the SIP leg
	web   sdpaudio.Format // PCMU/PCMA (relay) or opus (transcode) on the WebRTC leg
	sipTE sdpaudio.Format // telephone-event/8000 on the SIP leg; Name empty: none
	// webTE are the WebRTC leg's telephone-events: the one whose clock
	// matches web first (the one we send), any other after it (browsers
	// have been seen sending on the 8 kHz one beside Opus).
	webTE []sdpaudio.Format
}

// label is the metric label of the codec pair.
func (c codecs) label() string {
	if c.web.Name != c.sip.Name {
		return c.web.Name + "/" + c.sip.Name
	}
	return c.sip.Name
}

// lawConversion is what a relayed G.711 payload goes through from a leg
// speaking law from to one speaking law to: nil for the same law.
func lawConversion(from, to string) func([]byte) {
	switch {
	case from == codecPCMU && to == codecPCMA:
		return codec.UlawToAlaw
	case from == codecPCMA && to == codecPCMU:
		return codec.AlawToUlaw
	}
	return nil
}

// opusUsable tells whether this build and configuration can carry Opus.
func (e *Engine) opusUsable() bool { return codec.OpusAvailable && !e.cfg.DisableOpus }

// g711Format is the static RFC 3551 format of a G.711 codec name.
func g711Format(name string) sdpaudio.Format {
	if name == codecPCMA {
		return sdpaudio.Format{PayloadType: 8, Name: codecPCMA, ClockRate: 8000, Channels: 1}
	}
	return sdpaudio.Format{PayloadType: 0, Name: codecPCMU, ClockRate: 8000, Channels: 1}
}

func teFormat(pt uint8, clock uint32) sdpaudio.Format {
	return sdpaudio.Format{PayloadType: pt, Name: telephoneEvent, ClockRate: clock, Channels: 1, Fmtp: "0-16"}
}

// sipOfferFormats chooses what to offer the SIP side for a browser's offer:
// the configured G.711 codecs the browser has (relay), then the others when
// the browser has the other G.711 law (relayed through a law conversion) or
// Opus that can be transcoded; telephone-event/8000 when the browser sends
// DTMF at all.
func (e *Engine) sipOfferFormats(browser *sdpaudio.Audio) ([]sdpaudio.Format, error) {
	var out []sdpaudio.Format
	for _, name := range e.cfg.Codecs {
		if _, ok := browser.Find(name, 8000); ok {
			out = append(out, g711Format(name))
		}
	}
	_, opus := browser.Find(codecOpus, 48000)
	if len(out) > 0 || (opus && e.opusUsable()) {
		for _, name := range e.cfg.Codecs {
			if _, ok := browser.Find(name, 8000); !ok {
				out = append(out, g711Format(name))
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the browser offers none of %v%s", ErrNoCommonCodec, e.cfg.Codecs, e.opusNote())
	}
	_, te8 := browser.Find(telephoneEvent, 8000)
	_, te48 := browser.Find(telephoneEvent, 48000)
	if te8 || te48 {
		out = append(out, teFormat(ptTESIP, 8000))
	}
	return out, nil
}

func (e *Engine) opusNote() string {
	if e.opusUsable() {
		return " or opus"
	}
	return " (opus needs a build with tag opus)"
}

// codecsForSIPAnswer settles a browser-originated call once the SIP side
// answered the offer of sipOfferFormats: relay when the browser has the
// SIP side's codec, relay with a law conversion when it has the other
// G.711 law (a table look-up per byte, cheaper than Opus and no worse:
// the call is G.711 either way), Opus transcoding otherwise.
func (e *Engine) codecsForSIPAnswer(browser, answer *sdpaudio.Audio, offered []sdpaudio.Format) (codecs, error) {
	var c codecs
	for _, f := range answer.Formats {
		if (f.Is(codecPCMU, 8000) || f.Is(codecPCMA, 8000)) && offeredName(offered, f.Name) {
			c.sip = f
			break
		}
	}
	if c.sip.Name == "" {
		return c, fmt.Errorf("%w: the SIP answer has none of the offered codecs", ErrNoCommonCodec)
	}
	if te, ok := answer.Find(telephoneEvent, 8000); ok && offeredName(offered, telephoneEvent) {
		c.sipTE = te
	}
	if f, ok := browser.Find(c.sip.Name, 8000); ok {
		c.mode, c.web = ModeRelay, f
	} else if f, ok := e.otherLaw(browser, c.sip.Name); ok {
		c.mode, c.web = ModeRelay, f
	} else if f, ok := browser.Find(codecOpus, 48000); ok && e.opusUsable() {
		c.mode, c.web = ModeTranscode, f
	} else {
		return c, fmt.Errorf("%w: the browser cannot take %s", ErrNoCommonCodec, c.sip.Name)
	}
	// DESIGN §4: answer only the telephone-event whose clock is the codec's.
	if te, ok := browser.Find(telephoneEvent, c.web.ClockRate); ok {
		c.webTE = []sdpaudio.Format{te}
	}
	return c, nil
}

// otherLaw finds the G.711 law other than name in the browser's offer, if
// the configuration allows it.
func (e *Engine) otherLaw(browser *sdpaudio.Audio, name string) (sdpaudio.Format, bool) {
	other := codecPCMU
	if name == codecPCMU {
		other = codecPCMA
	}
	for _, allowed := range e.cfg.Codecs {
		if allowed == other {
			return browser.Find(other, 8000)
		}
	}
	return sdpaudio.Format{}, false
}

func offeredName(offered []sdpaudio.Format, name string) bool {
	for _, f := range offered {
		if f.Name == name {
			return true
		}
	}
	return false
}

// sipG711 returns the SIP offer's G.711 formats the configuration allows,
// in the SIP offer's order of preference.
func (e *Engine) sipG711(offer *sdpaudio.Audio) []sdpaudio.Format {
	var out []sdpaudio.Format
	for _, f := range offer.Formats {
		for _, name := range e.cfg.Codecs {
			if f.Is(name, 8000) {
				out = append(out, f)
			}
		}
	}
	return out
}

// webrtcOfferCodecs lists what to offer the browser for a SIP offer: its
// G.711 codecs first (relay is cheaper), then Opus when it can be
// transcoded; telephone-event at each clock in use.
func (e *Engine) webrtcOfferCodecs(offer *sdpaudio.Audio) ([]pion.RTPCodecParameters, error) {
	var out []pion.RTPCodecParameters
	for _, f := range e.sipG711(offer) {
		out = append(out, pionCodec(g711Format(f.Name)))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the SIP offer has none of %v", ErrNoCommonCodec, e.cfg.Codecs)
	}
	out = append(out, pionCodec(teFormat(ptTE8000, 8000)))
	if e.opusUsable() {
		out = append(out, pionCodec(sdpaudio.Format{PayloadType: ptOpus, Name: codecOpus, ClockRate: 48000, Channels: 2, Fmtp: "minptime=10;useinbandfec=1"}),
			pionCodec(teFormat(ptTE48000, 48000)))
	}
	return out, nil
}

// codecsForWebRTCAnswer settles a SIP-originated call once the browser
// answered: its first codec decides relay (G.711) or transcoding (Opus).
func (e *Engine) codecsForWebRTCAnswer(offer, answer *sdpaudio.Audio) (codecs, error) {
	var c codecs
	for _, f := range answer.Formats {
		if f.Is(codecPCMU, 8000) || f.Is(codecPCMA, 8000) || (f.Is(codecOpus, 48000) && e.opusUsable()) {
			c.web = f
			break
		}
	}
	if c.web.Name == "" {
		return c, fmt.Errorf("%w: the browser's answer has no codec that was offered", ErrNoCommonCodec)
	}
	if c.web.Is(codecOpus, 48000) {
		g711 := e.sipG711(offer)
		if len(g711) == 0 {
			return c, fmt.Errorf("%w: the SIP offer has no G.711", ErrNoCommonCodec)
		}
		c.mode, c.sip = ModeTranscode, g711[0]
	} else {
		f, ok := offer.Find(c.web.Name, 8000)
		if !ok {
			return c, fmt.Errorf("%w: the browser answered %s, which the SIP side did not offer", ErrNoCommonCodec, c.web.Name)
		}
		c.mode, c.sip = ModeRelay, f
	}
	if te, ok := offer.Find(telephoneEvent, 8000); ok {
		c.sipTE = te
	}
	if te, ok := answer.Find(telephoneEvent, c.web.ClockRate); ok {
		c.webTE = append(c.webTE, te)
	}
	for _, f := range answer.Formats {
		if f.Name == telephoneEvent && f.ClockRate != c.web.ClockRate {
			c.webTE = append(c.webTE, f)
		}
	}
	return c, nil
}

// pionCodec converts a format for pion's MediaEngine.
func pionCodec(f sdpaudio.Format) pion.RTPCodecParameters {
	mime := "audio/" + f.Name
	channels := uint16(0)
	switch {
	case f.Is(codecPCMU, 8000):
		mime = pion.MimeTypePCMU
	case f.Is(codecPCMA, 8000):
		mime = pion.MimeTypePCMA
	case f.Is(codecOpus, 48000):
		mime, channels = pion.MimeTypeOpus, 2
	}
	return pion.RTPCodecParameters{
		RTPCodecCapability: pion.RTPCodecCapability{MimeType: mime, ClockRate: f.ClockRate, Channels: channels, SDPFmtpLine: f.Fmtp},
		PayloadType:        pion.PayloadType(f.PayloadType),
	}
}
