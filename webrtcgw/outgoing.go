package webrtcgw

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"callpath/calls"
)

// Create implements camara.MediaSessions: the device of registration
// regID calls req.Receiver with req.Offer. The session is answered at once
// (Initial); the call's progress reaches the device as session-status
// events.
func (g *Gateway) Create(ctx context.Context, number, regID string, req calls.Session) (calls.Session, error) {
	if n, ok := req.Originator.Number(); !ok || n != number {
		return calls.Session{}, calls.ErrNotOriginator
	}
	if !g.devices.Live(ctx, number, regID) {
		return calls.Session{}, calls.ErrUnknownRegistration
	}
	proxy, ok := g.proxyURI()
	if !ok {
		return calls.Session{}, fmt.Errorf("webrtc gateway: no B2BUA address yet")
	}
	receiver := receiverUser(req.Receiver)
	id := uuid.Must(uuid.NewV7()).String()
	s := &session{g: g, owner: number, callID: uuid.NewString(), ended: make(chan struct{}),
		log: g.log.WithFields(logrus.Fields{"media_session_id": id, "direction": "outgoing"})}
	s.log = s.log.WithField("call_id", s.callID)

	media, err := g.media.NewMedia(ctx, s.callID, func(reason error) { s.mediaEnded(reason) })
	if err != nil {
		return calls.Session{}, fmt.Errorf("media for a new call: %w", err)
	}
	s.media = media
	sipOffer, err := media.OfferFromWebRTC(ctx, req.Offer)
	if err == nil && g.cfg.SecureFor != nil && g.cfg.SecureFor(number, receiver) {
		sipOffer, err = media.SecureSIPOffer(ctx)
		s.offeredSecure = true
	}
	if err != nil {
		_ = media.Close(ctx)
		return calls.Session{}, fmt.Errorf("%w: %w", calls.ErrBadOffer, err)
	}
	s.info = req
	s.info.ID, s.info.Owner, s.info.RegistrationID = id, number, regID
	s.info.Role, s.info.Status, s.info.CreatedAt = calls.Originator, calls.Initial, time.Now()

	s.receiver, s.sessionID = receiver, newSessionID()
	invite := s.newInvite(proxy, s.callID, sipOffer)

	if !g.add(s) {
		_ = media.Close(ctx)
		return calls.Session{}, ErrClosed
	}
	wait, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.cancelOut = cancel
	s.mu.Unlock()
	dlg, err := g.dialogs.WriteInvite(wait, invite)
	if err != nil {
		s.log.WithError(err).Warn("INVITE could not be sent")
		cancel()
		snap := s.snapshot()
		go s.setStatus(context.Background(), calls.Failed, "INVITE could not be sent", "")
		return snap, nil
	}
	s.mu.Lock()
	s.uac = dlg
	s.mu.Unlock()
	go s.runOutgoing(wait, cancel)
	return s.snapshot(), nil
}

// newInvite is the INVITE of an outgoing call with Call-ID callID,
// carrying offer.
func (s *session) newInvite(proxy sip.Uri, callID, offer string) *sip.Request {
	g := s.g
	invite := sip.NewRequest(sip.INVITE, sip.Uri{User: s.receiver, Host: proxy.Host, Port: proxy.Port})
	fromParams := sip.NewParams()
	fromParams.Add("tag", uuid.NewString())
	invite.AppendHeader(&sip.FromHeader{Address: sip.Uri{User: s.owner, Host: g.addr.IP.String(), Port: g.addr.Port},
		Params: fromParams})
	invite.AppendHeader(&sip.ToHeader{Address: sip.Uri{User: s.receiver, Host: proxy.Host, Port: proxy.Port}, Params: sip.NewParams()})
	callIDHeader := sip.CallIDHeader(callID)
	invite.AppendHeader(&callIDHeader)
	invite.AppendHeader(sip.NewHeader("Session-ID", s.sessionID))
	invite.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	invite.SetBody([]byte(offer))
	return invite
}

// receiverUser is the user part the INVITE asks the B2BUA for: the number
// of a tel: or number-as-user address, else the sip: address's user.
func receiverUser(a calls.Address) string {
	if n, ok := a.Number(); ok {
		return n
	}
	user, _, _ := strings.Cut(strings.TrimPrefix(string(a), "sip:"), "@")
	return user
}

// newSessionID starts a Session-ID (RFC 7989) for a call the gateway
// originates: our UUID, the remote one not yet known.
func newSessionID() string {
	return strings.ReplaceAll(uuid.NewString(), "-", "") + ";remote=00000000000000000000000000000000"
}

// runOutgoing follows an outgoing call from its INVITE to its end.
func (s *session) runOutgoing(wait context.Context, cancel context.CancelFunc) {
	defer cancel()
	ctx := context.Background()
	err := s.awaitAnswer(wait)
	var failed *sipgo.ErrDialogResponse
	if errors.As(err, &failed) && failed.Res.StatusCode == sip.StatusNotAcceptableHere && s.g.cfg.SecureRetry && !s.offeredSecure {
		switch rerr := s.offerSecure(wait); {
		case rerr == nil:
			err = s.awaitAnswer(wait) // CANCELs if the device hung up meanwhile
		case wait.Err() != nil:
			err = wait.Err() // the device hung up before it went out
		default:
			s.log.WithError(rerr).Info("488 to plain RTP; DTLS-SRTP could not be offered")
		}
	}
	switch {
	case err == nil:
		res := s.uac.InviteResponse
		answer, aerr := s.media.AnswerFromSIP(ctx, string(res.Body()))
		if aerr != nil {
			s.log.WithError(aerr).Warn("SDP answer refused: hanging up")
			_ = s.uac.Ack(ctx)
			_ = s.uac.Bye(ctx)
			s.setStatus(ctx, calls.Failed, "the answer's media cannot be used", "")
			return
		}
		if err := s.uac.Ack(ctx); err != nil {
			s.log.WithError(err).Warn("ACK could not be sent")
		}
		s.media.Answered()
		s.setStatus(ctx, calls.Connected, fmt.Sprintf("%d %s", res.StatusCode, res.Reason), answer)
	case errors.As(err, &failed):
		s.mu.Lock()
		alerted := s.alerted
		s.mu.Unlock()
		s.setStatus(ctx, calls.FailureStatus(failed.Res.StatusCode, alerted),
			fmt.Sprintf("%d %s", failed.Res.StatusCode, failed.Res.Reason), "")
		return
	case wait.Err() != nil:
		s.mu.Lock()
		status, why := s.cancelledAs, s.cancelReason
		s.mu.Unlock()
		s.setStatus(ctx, status, why, "")
		return
	default:
		s.log.WithError(err).Info("outgoing call failed")
		s.setStatus(ctx, calls.NotReachable, "no response", "")
		return
	}
	// Established: it ends by a BYE either way (onBye, Delete) or by the
	// media ending; a BYE that is never answered leaves the dialog open,
	// the session's end does not.
	select {
	case <-s.uac.Context().Done():
	case <-s.ended:
	}
}

// awaitAnswer waits for the final answer to the call's INVITE, telling the
// device of each provisional one and applying its early SDP answer.
func (s *session) awaitAnswer(wait context.Context) error {
	ctx := context.Background()
	return s.uac.WaitAnswer(wait, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		if !res.IsProvisional() {
			return nil
		}
		status, ok := calls.ProvisionalStatus(res.StatusCode)
		if !ok {
			return nil
		}
		answer := ""
		if len(res.Body()) > 0 {
			a, err := s.media.AnswerFromSIP(ctx, string(res.Body()))
			if err != nil {
				s.log.WithError(err).Warn("early SDP answer refused")
			} else {
				answer = a
			}
		}
		s.mu.Lock()
		if res.StatusCode == 180 {
			s.alerted = true
		}
		s.mu.Unlock()
		s.setStatus(ctx, status, fmt.Sprintf("%d %s", res.StatusCode, res.Reason), answer)
		return nil
	}})
}

// offerSecure sends the call again, offering DTLS-SRTP, after the SIP side
// refused plain RTP with 488 Not Acceptable Here: a TAS that wants "WebRTC
// style" media asks for it that way. The new INVITE is a new dialog (a new
// Call-ID; the Session-ID stays, it is the same call to the user); the
// device hears nothing of the refusal.
func (s *session) offerSecure(wait context.Context) error {
	offer, err := s.media.SecureSIPOffer(wait)
	if err != nil {
		return err
	}
	proxy, ok := s.g.proxyURI()
	if !ok {
		return fmt.Errorf("webrtc gateway: no B2BUA address")
	}
	callID := uuid.NewString()
	s.g.rekey(s, callID)
	s.offeredSecure = true
	s.log.WithField("new_call_id", callID).Info("488 to plain RTP: offering DTLS-SRTP in a new INVITE")
	dlg, err := s.g.dialogs.WriteInvite(wait, s.newInvite(proxy, callID, offer))
	if err != nil {
		return fmt.Errorf("the DTLS-SRTP INVITE could not be sent: %w", err)
	}
	s.mu.Lock()
	s.uac = dlg
	s.mu.Unlock()
	return nil
}

// hangUpOutgoing cancels an unanswered outgoing call or hangs up an
// answered one; either way the session ends in status end
// (SessionCancelled or Terminated when the device asked, Failed when the
// gateway gives up).
func (s *session) hangUpOutgoing(ctx context.Context, end calls.Status, why string) {
	s.mu.Lock()
	status, uac, cancel := s.info.Status, s.uac, s.cancelOut
	if s.cancelledAs == "" {
		s.cancelledAs, s.cancelReason = end, why
	}
	s.mu.Unlock()
	switch {
	case status.Terminal():
	case status.Established():
		// The device hears of the end at once; the BYE's answer is the
		// other side's business.
		s.setStatus(ctx, end, why, "")
		if uac != nil {
			if err := uac.Bye(ctx); err != nil {
				s.log.WithError(err).Info("BYE failed")
			}
		}
	case cancel != nil:
		cancel() // WaitAnswer sends CANCEL and ends the session
	}
}
