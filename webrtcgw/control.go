package webrtcgw

import (
	"context"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"callpath/calls"
	"callpath/webrtc"
)

// Update implements camara.MediaSessions: a device's status change. On an
// incoming call the receiver answers (InProgress with early media,
// Ringing, Connected); either side holds and resumes an established call.
func (g *Gateway) Update(ctx context.Context, number, id string, c calls.Change) (calls.Session, error) {
	s, err := g.session(number, id)
	if err != nil {
		return calls.Session{}, err
	}
	// One change at a time per session: they are SIP transactions in turn.
	s.changeMu.Lock()
	defer s.changeMu.Unlock()
	s.mu.Lock()
	current, haveAnswer := s.info.Status, s.sipSDP != ""
	s.mu.Unlock()
	action, err := calls.Decide(current, s.info.Role, haveAnswer, c)
	if err != nil {
		return calls.Session{}, err
	}
	switch action {
	case calls.SendProgress, calls.SendAnswer:
		sdp, err := s.sipAnswer(ctx, c.Answer)
		if err != nil {
			return calls.Session{}, err
		}
		ct := sip.NewHeader("Content-Type", "application/sdp")
		if action == calls.SendProgress {
			if err := s.uas.Respond(183, "Session Progress", []byte(sdp), ct); err != nil {
				return calls.Session{}, fmt.Errorf("183: %w", err)
			}
			s.setStatus(ctx, calls.InProgress, "183 Session Progress sent", c.Answer)
			break
		}
		// sipgo sends the 200 until its ACK comes, which the device need
		// not wait for; a 200 never ACKed ends the call (RFC 3261
		// §13.3.1.4).
		s.media.Answered()
		s.setStatus(ctx, calls.Connected, "200 OK sent", c.Answer)
		close(s.answered)
		go func() {
			if err := s.uas.Respond(200, "OK", []byte(sdp), ct, &g.dialogs.ContactHDR); err != nil {
				s.log.WithError(err).Warn("answer not confirmed: hanging up")
				_ = s.uas.Bye(context.Background())
				s.setStatus(context.Background(), calls.Terminated, "the answer was never acknowledged", "")
			}
		}()
	case calls.SendRinging:
		if err := s.uas.Respond(180, "Ringing", nil); err != nil {
			return calls.Session{}, fmt.Errorf("180: %w", err)
		}
		s.mu.Lock()
		s.alerted = true
		s.mu.Unlock()
		s.setStatus(ctx, calls.Ringing, "180 Ringing sent", "")
	case calls.SendHold, calls.SendResume:
		dir, status := webrtc.SendOnly, calls.Hold
		if action == calls.SendResume {
			dir, status = webrtc.SendRecv, calls.Resume
		}
		if err := s.reinvite(ctx, dir); err != nil {
			return calls.Session{}, err
		}
		s.setStatus(ctx, status, string(status)+" by the device", "")
	}
	return s.snapshot(), nil
}

// sipAnswer turns the device's answer into our answer toward SIP, once:
// the 200 repeats what the 183 carried.
func (s *session) sipAnswer(ctx context.Context, deviceAnswer string) (string, error) {
	s.mu.Lock()
	done := s.sipSDP
	s.mu.Unlock()
	if done != "" {
		return done, nil
	}
	sdp, err := s.media.AnswerFromWebRTC(ctx, deviceAnswer)
	if err != nil {
		return "", fmt.Errorf("%w: %w", calls.ErrBadOffer, err)
	}
	s.mu.Lock()
	s.sipSDP = sdp
	s.mu.Unlock()
	return sdp, nil
}

// reinvite sends the SIP side a re-INVITE with our media direction dir.
func (s *session) reinvite(ctx context.Context, dir webrtc.Direction) error {
	offer, err := s.media.SIPReoffer(ctx, dir)
	if err != nil {
		return fmt.Errorf("re-offer: %w", err)
	}
	req := sip.NewRequest(sip.INVITE, sip.Uri{})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody([]byte(offer))
	var res *sip.Response
	if s.uas != nil {
		req.Recipient = s.uas.InviteRequest.Contact().Address
		res, err = s.uas.Do(ctx, req)
	} else {
		req.Recipient = s.uac.InviteResponse.Contact().Address
		res, err = s.uac.Do(ctx, req)
	}
	if err != nil {
		return fmt.Errorf("re-INVITE: %w", err)
	}
	if !res.IsSuccess() {
		return fmt.Errorf("re-INVITE: %d %s", res.StatusCode, res.Reason)
	}
	ack := sip.NewRequest(sip.ACK, req.Recipient)
	if s.uas != nil {
		err = s.uas.WriteRequest(ack)
	} else {
		err = s.uac.WriteAck(ctx, ack)
	}
	if err != nil {
		s.log.WithError(err).Info("ACK of the re-INVITE failed")
	}
	return s.media.ApplySIPAnswer(ctx, string(res.Body()))
}

// Delete implements camara.MediaSessions: the originator cancels, the
// receiver declines (603), either hangs up an established call. A session
// that has ended is not found: there is nothing left to delete.
func (g *Gateway) Delete(ctx context.Context, number, id string) error {
	s, err := g.session(number, id)
	if err != nil {
		return err
	}
	status := s.status()
	switch {
	case status.Terminal():
		return calls.ErrNotFound
	case s.info.Role == calls.Originator && status.Established():
		s.hangUpOutgoing(ctx, calls.Terminated, "terminated by the originator")
	case s.info.Role == calls.Originator:
		s.hangUpOutgoing(ctx, calls.SessionCancelled, "cancelled by the originator")
	case status.Established():
		s.hangUpIncoming(ctx, calls.Terminated, "terminated by the receiver")
	default:
		s.hangUpIncoming(ctx, calls.Declined, "declined by the receiver")
	}
	return nil
}

// heldBy reports whether an SDP offer puts us on hold: its audio is
// sendonly or inactive, or its address is 0.0.0.0 (RFC 2543 style).
func heldBy(sdp string) bool {
	for _, line := range strings.Split(sdp, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "a=sendonly", line == "a=inactive", strings.HasPrefix(line, "c=IN IP4 0.0.0.0"):
			return true
		}
	}
	return false
}
