package webrtc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"callpath/webrtc/sdpaudio"

	pion "github.com/pion/webrtc/v4"
)

// OfferFromWebRTC takes the offer of a browser calling out and returns the
// SDP offer for the SIP side: the G.711 codecs the call can carry
// (ErrNoCommonCodec when there are none: answer 488), telephone-event/8000,
// this session's RTP address.
func (s *Session) OfferFromWebRTC(ctx context.Context, browserOffer string) (string, error) {
	unlock, err := s.enter(ctx, stateNew)
	if err != nil {
		return "", err
	}
	defer unlock()
	d, err := parseSDP(browserOffer)
	if err != nil {
		return "", err
	}
	formats, err := s.eng.sipOfferFormats(&d.Audio)
	if err != nil {
		return "", err
	}
	s.browserOffer, s.sipOffered, s.state = d, formats, stateWebRTCOffered
	s.browserOfferRaw = browserOffer
	s.sipSecure = s.opts.SIPSecure
	if s.sipSecure {
		s.sipSetup = "actpass"
	}
	return sdpaudio.Offer(s.localSIP(formats, d.Audio.Direction, true)), nil
}

// SecureSIPOffer makes the SIP offer of a browser's call again, over
// DTLS-SRTP: when the SIP side refused the plain RTP one with 488 Not
// Acceptable Here (a TAS that wants "WebRTC style" media says so that
// way), or before the first INVITE when the operator lists the peers the
// call goes to as wanting it. Same formats and port, UDP/TLS/RTP/SAVP with our fingerprint and
// a=setup:actpass (RFC 5763 §5). ErrCallOrder once an answer was taken or
// when the offer already was DTLS-SRTP.
func (s *Session) SecureSIPOffer(ctx context.Context) (string, error) {
	unlock, err := s.enter(ctx, stateWebRTCOffered)
	if err != nil {
		return "", err
	}
	defer unlock()
	if s.sipSecure {
		return "", fmt.Errorf("%w: the SIP offer already was DTLS-SRTP", ErrCallOrder)
	}
	s.sipSecure, s.sipSetup = true, "actpass"
	return sdpaudio.Offer(s.localSIP(s.sipOffered, s.browserOffer.Audio.Direction, true)), nil
}

// AnswerFromSIP takes the SIP side's answer (from a 18x or the 200) to the
// offer of OfferFromWebRTC and returns the answer for the browser. Called
// again with a later answer (the 200 after an early-media 183, or another
// fork's), it points the SIP leg at that answer's address and returns the
// same browser answer; a G.711 law other than the first answer's is
// converted on the way.
func (s *Session) AnswerFromSIP(ctx context.Context, sipAnswer string) (string, error) {
	unlock, err := s.enter(ctx, stateWebRTCOffered, stateActive)
	if err != nil {
		return "", err
	}
	defer unlock()
	if s.browserOffer == nil {
		return "", fmt.Errorf("%w: the call did not start with a browser offer", ErrCallOrder)
	}
	d, err := parseSDP(sipAnswer)
	if err != nil {
		return "", err
	}
	secure, err := sipTransport(&d.Audio)
	if err != nil {
		return "", err
	}
	if secure != s.sipSecure {
		return "", fmt.Errorf("%w: the SIP answer's transport %s is not the offer's", ErrUnsupportedTransport, d.Audio.Proto)
	}
	c, err := s.eng.codecsForSIPAnswer(&s.browserOffer.Audio, &d.Audio, s.sipOffered)
	if err != nil {
		return "", err
	}
	if s.state == stateActive {
		if err := s.reanswerFromSIP(d, c); err != nil {
			return "", err
		}
		return s.webrtcAnswer, nil
	}

	webCodecs := []pion.RTPCodecParameters{pionCodec(c.web)}
	for _, te := range c.webTE {
		webCodecs = append(webCodecs, pionCodec(te))
	}
	pc, err := s.newPeerConnection(webCodecs)
	if err != nil {
		return "", err
	}
	s.pc = pc
	sdp, err := s.answerBrowser(ctx, s.browserOfferRaw, s.browserOffer.Audio.Direction)
	if err != nil {
		return "", err
	}
	s.sip.setRemote(&d.Audio)
	s.lastSIPAnswer, s.webrtcAnswer = d, sdp
	if secure {
		// The answerer picks the roles (RFC 5763 §5): active means it
		// starts the handshake, and we are the server.
		client := strings.EqualFold(d.Audio.Setup, "passive")
		s.sip.secure.Store(newSIPDTLS(s.sip, client, d.Audio.Fingerprint))
		s.sipSetup = s.sip.secure.Load().setup()
	}
	s.activate(c, directions{
		sip:       sdpaudio.Combine(s.browserOffer.Audio.Direction, d.Audio.Direction),
		sipRemote: d.Audio.Direction, webRemote: s.browserOffer.Audio.Direction,
	}, ptTESIP)
	return sdp, nil
}

// reanswerFromSIP applies a later SIP answer to an active browser call.
func (s *Session) reanswerFromSIP(d *sdpaudio.Description, c codecs) error {
	if last := s.lastSIPAnswer; last != nil && last.OriginID == d.OriginID && last.OriginVersion == d.OriginVersion &&
		last.Audio.Addr == d.Audio.Addr && last.Audio.Port == d.Audio.Port {
		return nil // the 200 repeats the 183's SDP
	}
	// The browser's answer is given: its leg keeps its codec, and any
	// G.711 the SIP side picks now is relayed (converted to the other law
	// if need be) or transcoded as before.
	cur := s.plan.Load()
	c.mode, c.web, c.webTE = cur.mode, cur.web, cur.webTE
	s.setSIPRemote(&d.Audio)
	s.lastSIPAnswer = d
	s.dirs.sipRemote = d.Audio.Direction
	s.dirs.sip = sdpaudio.Combine(s.browserOffer.Audio.Direction, d.Audio.Direction)
	s.replan(c)
	return nil
}

// OfferFromSIP takes the offer of a SIP call to a browser and returns the
// WebRTC offer for the device: the SIP side's G.711 codecs (so the call can
// be relayed), Opus when this build transcodes, telephone-events.
func (s *Session) OfferFromSIP(ctx context.Context, sipOffer string) (string, error) {
	unlock, err := s.enter(ctx, stateNew)
	if err != nil {
		return "", err
	}
	defer unlock()
	d, err := parseSDP(sipOffer)
	if err != nil {
		return "", err
	}
	secure, err := sipTransport(&d.Audio)
	if err != nil {
		return "", err
	}
	if secure {
		// As answerer we start the handshake unless the offer insists on
		// doing so itself (RFC 5763 §5).
		client := !strings.EqualFold(d.Audio.Setup, "active")
		s.sip.secure.Store(newSIPDTLS(s.sip, client, d.Audio.Fingerprint))
		s.sipSetup = s.sip.secure.Load().setup()
	}
	webCodecs, err := s.eng.webrtcOfferCodecs(&d.Audio)
	if err != nil {
		return "", err
	}
	pc, err := s.newPeerConnection(webCodecs)
	if err != nil {
		return "", err
	}
	s.pc = pc
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("media: webrtc offer: %w", err)
	}
	sdp, err := s.localDescription(ctx, pc, offer)
	if err != nil {
		return "", err
	}
	s.sipOffer, s.state = d, stateSIPOffered
	return sdp, nil
}

// AnswerFromWebRTC takes the device's answer to the offer of OfferFromSIP
// and returns the SIP answer (for a 183 with early media, then the 200:
// calling it again with the same answer returns the same SIP answer).
func (s *Session) AnswerFromWebRTC(ctx context.Context, browserAnswer string) (string, error) {
	unlock, err := s.enter(ctx, stateSIPOffered, stateActive)
	if err != nil {
		return "", err
	}
	defer unlock()
	if s.sipOffer == nil {
		return "", fmt.Errorf("%w: the call did not start with a SIP offer", ErrCallOrder)
	}
	if s.state == stateActive {
		if browserAnswer == s.lastWebAnswer {
			return s.sipAnswer, nil
		}
		return "", fmt.Errorf("%w: a second, different answer from the browser", ErrCallOrder)
	}
	d, err := parseSDP(browserAnswer)
	if err != nil {
		return "", err
	}
	c, err := s.eng.codecsForWebRTCAnswer(&s.sipOffer.Audio, &d.Audio)
	if err != nil {
		return "", err
	}
	if err := s.pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: browserAnswer}); err != nil {
		return "", fmt.Errorf("%w: the browser answer: %w", ErrBadSDP, err)
	}
	formats := []sdpaudio.Format{c.sip}
	if c.sipTE.Name != "" {
		formats = append(formats, c.sipTE)
	}
	offered := s.sipOffer.Audio
	ourDir := sdpaudio.Combine(d.Audio.Direction, offered.Direction)
	local := s.localSIP(formats, ourDir, offered.RTCPMux)
	s.sipAnswer = sdpaudio.Answer(s.sipOffer, local)
	s.lastWebAnswer = browserAnswer
	s.sip.setRemote(&offered)
	s.activate(c, directions{sip: ourDir, sipRemote: offered.Direction, webRemote: d.Audio.Direction}, c.sipTE.PayloadType)
	return s.sipAnswer, nil
}

// activate starts the media once both legs are negotiated (under s.mu).
func (s *Session) activate(c codecs, d directions, sipTERecv uint8) {
	s.dirs, s.sipTERecv = d, sipTERecv
	s.webStats.clock.Store(int64(c.web.ClockRate))
	s.replan(c)
	s.state = stateActive
	s.armConnectTimer()
	s.started.Store(true)
	s.eng.metrics.SessionStarted(c.label(), c.mode.String())
	s.log.WithField("codec", c.label()).WithField("mode", c.mode.String()).Debug("media: session negotiated")
	s.spawn(s.supervise)
	if sec := s.sip.secure.Load(); sec != nil {
		sec.start()
	}
}

// directions are the three direction attributes that decide what flows:
// ours toward the SIP peer, the SIP peer's, and the browser's (ours
// toward the browser follows the browser's, pion answers it).
type directions struct {
	sip, sipRemote, webRemote sdpaudio.Direction
}

// replan publishes a new plan for the packet paths from the codecs and
// the current directions (under s.mu).
func (s *Session) replan(c codecs) {
	d := s.dirs
	sdp := s.sip.sdpRemote.Load()
	var lawToSIP, lawToWebRTC func([]byte)
	if c.mode == ModeRelay {
		lawToSIP, lawToWebRTC = lawConversion(c.web.Name, c.sip.Name), lawConversion(c.sip.Name, c.web.Name)
	}
	s.plan.Store(&plan{
		codecs:       c,
		lawToSIP:     lawToSIP,
		lawToWebRTC:  lawToWebRTC,
		toSIP:        d.sip.Sends() && d.sipRemote.Receives() && d.webRemote.Sends() && sdp != nil && !sdp.rtp.Addr().IsUnspecified(),
		toWebRTC:     d.sipRemote.Sends() && d.sip.Receives() && d.webRemote.Receives(),
		expectSIP:    d.sipRemote.Sends() && d.sip.Receives(),
		expectWebRTC: d.webRemote.Sends(),
		sipTERecv:    s.sipTERecv,
	})
}

// enter starts an offer/answer step: it checks ctx, takes s.mu and checks
// that the session is in one of states. On success the caller releases
// s.mu with the returned unlock; on failure s.mu is not held.
func (s *Session) enter(ctx context.Context, states ...sessionState) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if err := s.usable(states...); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	return s.mu.Unlock, nil
}

// usable checks the session has not ended and is in one of states (under
// s.mu).
func (s *Session) usable(states ...sessionState) error {
	select {
	case <-s.done:
		return s.endErr
	default:
	}
	for _, st := range states {
		if s.state == st {
			return nil
		}
	}
	return ErrCallOrder
}

// localSIP describes our side of the SIP leg (under s.mu): every new SDP
// raises the origin version (RFC 3264 §8).
func (s *Session) localSIP(formats []sdpaudio.Format, dir sdpaudio.Direction, rtcpMux bool) sdpaudio.Local {
	s.sdpVersion++
	l := sdpaudio.Local{
		OriginID: s.sdpID, OriginVersion: s.sdpVersion,
		Addr: s.eng.rtpAddr, Port: s.sip.localPort, RTCPPort: s.sip.localRTCPPort, RTCPMux: rtcpMux,
		Formats: formats, Direction: dir, Ptime: s.eng.cfg.Ptime,
	}
	if s.sipSetup != "" {
		l.Proto, l.Fingerprint, l.Setup = protoDTLS, s.eng.fingerprint, s.sipSetup
	}
	return l
}

// parseSDP reads an SDP; a description without audio is one the plane
// cannot carry (488), not a malformed one.
func parseSDP(raw string) (*sdpaudio.Description, error) {
	d, err := sdpaudio.Parse(raw)
	if errors.Is(err, sdpaudio.ErrNoAudio) {
		return nil, fmt.Errorf("%w: %w", ErrNoCommonCodec, err)
	}
	return d, err
}

// sipTransport checks the SIP leg's transport: plain RTP (false) or
// DTLS-SRTP (true, RFC 5764 §8), which needs a fingerprint; SDES-SRTP and
// the rest are not spoken here. The SIP leg does no ICE: a peer's ICE
// attributes are ignored and our SDP carries none, so an ICE agent (a PBX
// in "webrtc=yes" style) proceeds without ICE at the default address of
// the m= and c= lines (RFC 8839 §4.3), where the plane latches as usual.
func sipTransport(a *sdpaudio.Audio) (secure bool, err error) {
	switch strings.ToUpper(a.Proto) {
	case "RTP/AVP", "RTP/AVPF":
		return false, nil
	case "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF":
		if a.Fingerprint == "" {
			return false, fmt.Errorf("%w: DTLS-SRTP without a fingerprint", ErrUnsupportedTransport)
		}
		return true, nil
	}
	return false, fmt.Errorf("%w: %s", ErrUnsupportedTransport, a.Proto)
}
