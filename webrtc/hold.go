package webrtc

import (
	"context"
	"fmt"

	"callpath/webrtc/sdpaudio"

	pion "github.com/pion/webrtc/v4"
)

// Direction is an SDP direction attribute (RFC 3264 §5.1).
type Direction = sdpaudio.Direction

// The directions, from the point of view of the side writing the SDP.
const (
	SendRecv = sdpaudio.SendRecv
	SendOnly = sdpaudio.SendOnly
	RecvOnly = sdpaudio.RecvOnly
	Inactive = sdpaudio.Inactive
)

// UpdateFromSIP answers a new offer from the SIP side of an active call (a
// re-INVITE or UPDATE: hold with a=sendonly/inactive or c=0.0.0.0, resume,
// a new address). The plane answers it itself and stops or resumes
// forwarding in each direction; the browser leg is not renegotiated: on
// hold it simply receives what the SIP side still sends (music on hold) or
// nothing. The codec must stay; ErrNoCommonCodec otherwise (answer 488:
// the call goes on as before).
func (s *Session) UpdateFromSIP(ctx context.Context, offer string) (string, error) {
	unlock, err := s.enter(ctx, stateActive)
	if err != nil {
		return "", err
	}
	defer unlock()
	d, err := parseSDP(offer)
	if err != nil {
		return "", err
	}
	secure, err := sipTransport(&d.Audio)
	if err != nil {
		return "", err
	}
	if secure != (s.sip.secure.Load() != nil) {
		return "", fmt.Errorf("%w: the re-offer changes the transport to %s", ErrUnsupportedTransport, d.Audio.Proto)
	}
	c := s.plan.Load().codecs
	sip, ok := s.sameOrG711(&d.Audio, c)
	if !ok {
		return "", fmt.Errorf("%w: the re-offer drops %s", ErrNoCommonCodec, c.sip.Name)
	}
	c.sip = sip
	c.sipTE = sdpaudio.Format{}
	if te, ok := d.Audio.Find(telephoneEvent, 8000); ok {
		c.sipTE = te
	}
	formats := []sdpaudio.Format{c.sip}
	if c.sipTE.Name != "" {
		formats = append(formats, c.sipTE)
		s.sipTERecv = c.sipTE.PayloadType
	}
	s.setSIPRemote(&d.Audio)
	s.dirs.sipRemote = d.Audio.Direction
	s.dirs.sip = sdpaudio.Combine(SendRecv, d.Audio.Direction)
	if d.Audio.Addr.IsUnspecified() { // RFC 2543 hold: nothing is to be sent there
		s.dirs.sip = sdpaudio.Combine(RecvOnly, d.Audio.Direction)
	}
	s.replan(c)
	return sdpaudio.Answer(d, s.localSIP(formats, s.dirs.sip, d.Audio.RTCPMux)), nil
}

// sameOrG711 finds the codec to keep on the SIP leg in a re-offer: the
// current one, or else any configured G.711 (the browser leg does not
// care: a relayed call converts the law, a transcoded one encodes it).
func (s *Session) sameOrG711(a *sdpaudio.Audio, c codecs) (sdpaudio.Format, bool) {
	if f, ok := a.Find(c.sip.Name, 8000); ok {
		return f, true
	}
	if g711 := s.eng.sipG711(a); len(g711) > 0 {
		return g711[0], true
	}
	return sdpaudio.Format{}, false
}

// setSIPRemote points the SIP leg at a new SDP address; the same address
// keeps what latching learned (under s.mu).
func (s *Session) setSIPRemote(a *sdpaudio.Audio) {
	if cur := s.sip.sdpRemote.Load(); cur != nil && cur.rtp.Addr() == a.Addr && cur.rtp.Port() == a.Port && cur.rtcpMux == a.RTCPMux {
		return
	}
	s.sip.setRemote(a)
}

// UpdateFromWebRTC answers a renegotiation offer from the browser of an
// active call (hold: a=sendonly or inactive; resume: sendrecv). Forwarding
// follows the new direction; the SIP leg is not renegotiated (use
// SIPReoffer for that). The codec must stay.
func (s *Session) UpdateFromWebRTC(ctx context.Context, offer string) (string, error) {
	unlock, err := s.enter(ctx, stateActive)
	if err != nil {
		return "", err
	}
	defer unlock()
	d, err := parseSDP(offer)
	if err != nil {
		return "", err
	}
	c := s.plan.Load().codecs
	if _, ok := d.Audio.Find(c.web.Name, c.web.ClockRate); !ok {
		return "", fmt.Errorf("%w: the browser's new offer drops %s", ErrNoCommonCodec, c.web.Name)
	}
	sdp, err := s.answerBrowser(ctx, offer, d.Audio.Direction)
	if err != nil {
		return "", err
	}
	s.dirs.webRemote = d.Audio.Direction
	s.replan(c)
	return sdp, nil
}

// SIPReoffer returns an offer for a re-INVITE toward the SIP side with our
// direction set to dir (SendOnly or Inactive to hold the SIP party when
// the browser holds, SendRecv to resume), the codec unchanged. Its answer
// goes to ApplySIPAnswer.
func (s *Session) SIPReoffer(ctx context.Context, dir Direction) (string, error) {
	unlock, err := s.enter(ctx, stateActive)
	if err != nil {
		return "", err
	}
	defer unlock()
	c := s.plan.Load().codecs
	formats := []sdpaudio.Format{c.sip}
	if c.sipTE.Name != "" {
		formats = append(formats, c.sipTE)
	}
	s.sipReoffered = dir
	return sdpaudio.Offer(s.localSIP(formats, dir, s.sip.sdpRemote.Load().rtcpMux)), nil
}

// ApplySIPAnswer takes the SIP side's answer to SIPReoffer.
func (s *Session) ApplySIPAnswer(ctx context.Context, answer string) error {
	unlock, err := s.enter(ctx, stateActive)
	if err != nil {
		return err
	}
	defer unlock()
	d, err := parseSDP(answer)
	if err != nil {
		return err
	}
	c := s.plan.Load().codecs
	if _, ok := d.Audio.Find(c.sip.Name, 8000); !ok {
		return fmt.Errorf("%w: the answer to our re-offer drops %s", ErrNoCommonCodec, c.sip.Name)
	}
	s.setSIPRemote(&d.Audio)
	s.dirs.sipRemote = d.Audio.Direction
	s.dirs.sip = sdpaudio.Combine(s.sipReoffered, d.Audio.Direction)
	s.replan(c)
	return nil
}

// answerBrowser has pion answer a browser offer and returns the answer
// with the direction RFC 3264 §6.1 wants for the offer's. pion is shown
// the offer as sendrecv whatever it says: it would answer sendonly with
// sendrecv and stop its transceiver, for good, on inactive; the plan, not
// pion, decides what flows (under s.mu).
func (s *Session) answerBrowser(ctx context.Context, offer string, offered Direction) (string, error) {
	if err := s.pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeOffer, SDP: sdpaudio.WithDirection(offer, SendRecv)}); err != nil {
		return "", fmt.Errorf("%w: the browser offer: %w", ErrBadSDP, err)
	}
	answer, err := s.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: answering the browser: %w", ErrNoCommonCodec, err)
	}
	sdp, err := s.localDescription(ctx, s.pc, answer)
	if err != nil {
		return "", err
	}
	return sdpaudio.WithDirection(sdp, sdpaudio.Combine(SendRecv, offered)), nil
}
