package webrtcgw

import (
	"context"
	"errors"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"callpath/calls"
	"callpath/webrtc"
)

// onInvite takes a call the B2BUA routes to a device number: it makes the
// media session, tells the subscriber's apps (session-invitation) and
// waits, on this handler's goroutine, for the device to answer or decline,
// the caller to cancel, or the ring timeout. A re-INVITE of an established
// call is answered by the media plane.
func (g *Gateway) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil {
		if _, ok := to.Params.Get("tag"); ok {
			g.onReinvite(req, tx)
			return
		}
	}
	reply := func(code int, reason string) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
	}
	number := req.Recipient.User
	if !g.devices.HasDevice(number) {
		reply(480, "Temporarily Unavailable") // the device registration ended meanwhile
		return
	}
	uas, err := g.dialogs.ReadInvite(req, tx)
	if err != nil {
		reply(400, "Bad Request")
		return
	}
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7()).String()
	s := &session{g: g, owner: number, callID: req.CallID().Value(), uas: uas, ended: make(chan struct{}),
		decision: make(chan decision, 1), answered: make(chan struct{})}
	s.log = g.log.WithFields(logrus.Fields{"media_session_id": id, "direction": "incoming", "call_id": s.callID})
	_ = uas.Respond(100, "Trying", nil)

	media, err := g.media.NewMedia(ctx, s.callID, func(reason error) { s.mediaEnded(reason) })
	if err != nil {
		s.log.WithError(err).Warn("no media for an incoming call")
		_ = uas.Respond(503, "Service Unavailable", nil)
		return
	}
	s.media = media
	webOffer, err := media.OfferFromSIP(ctx, string(req.Body()))
	if err != nil {
		code, reason := 488, "Not Acceptable Here"
		if errors.Is(err, webrtc.ErrBadSDP) || len(req.Body()) == 0 {
			code, reason = 400, "Bad Request: SDP offer required"
		}
		s.log.WithError(err).Info("incoming call refused")
		_ = uas.Respond(code, reason, nil)
		_ = media.Close(ctx)
		return
	}
	// The caller as the device sees it: tel:+E164 for a number, else the
	// From URI's user@host.
	user := req.From().Address.User
	from := calls.Address("sip:" + user + "@" + req.From().Address.Host)
	if isNumber(user) {
		from = calls.NumberAddress(user)
	}
	s.info = calls.Session{ID: id, Owner: number, Role: calls.Receiver, Originator: from,
		OriginatorName: req.From().DisplayName, Receiver: calls.NumberAddress(number),
		Status: calls.Initial, Offer: webOffer, CreatedAt: time.Now()}
	if !g.add(s) {
		_ = uas.Respond(503, "Service Unavailable", nil)
		_ = media.Close(ctx)
		return
	}
	told, err := g.notify.Notify(ctx, s.snapshot(), true)
	if err != nil || told == 0 {
		// No device can hear of the call (none subscribed to
		// session-invitation): the caller learns it now, not after the ring
		// timeout, and a FALLBACK registration takes the call at once.
		if err != nil {
			s.log.WithError(err).Warn("session-invitation could not be recorded")
		}
		s.setStatus(ctx, calls.NotReachable, "no device listens for calls", "")
		_ = uas.Respond(480, "Temporarily Unavailable", nil)
		return
	}

	ring := time.NewTimer(g.cfg.RingTimeout)
	defer ring.Stop()
	select {
	case <-s.answered:
		select { // until BYE, either way, or the session's end
		case <-uas.Context().Done():
		case <-s.ended:
		}
	case d := <-s.decision:
		code, reason := calls.FailureCode(d.status)
		_ = uas.Respond(code, reason, nil)
		s.setStatus(ctx, d.status, d.reason, "")
	case <-ring.C:
		_ = uas.Respond(480, "Temporarily Unavailable", nil)
		s.setStatus(ctx, calls.NoAnswer, "no device answered", "")
	case <-uas.Context().Done():
		s.setStatus(ctx, calls.SessionCancelled, "cancelled by the caller", "")
	}
}

func isNumber(user string) bool {
	if len(user) < 2 || user[0] != '+' {
		return false
	}
	for _, c := range user[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// hangUpIncoming declines an unanswered incoming call with status or hangs
// up an answered one.
func (s *session) hangUpIncoming(ctx context.Context, status calls.Status, why string) {
	s.mu.Lock()
	current := s.info.Status
	s.mu.Unlock()
	switch {
	case current.Terminal():
	case current.Established():
		s.setStatus(ctx, status, why, "")
		if err := s.uas.Bye(ctx); err != nil {
			s.log.WithError(err).Info("BYE failed")
		}
	default:
		select {
		case s.decision <- decision{status: status, reason: why}:
		default: // decided already
		}
	}
}

// onAck confirms the dialog of an answered incoming call.
func (g *Gateway) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if s := g.byCall(req.CallID().Value()); s != nil && s.uas != nil {
		if err := s.uas.ReadAck(req, tx); err != nil {
			s.log.WithError(err).Debug("ACK not for this dialog")
		}
	}
}

// onBye ends a call the other side hung up.
func (g *Gateway) onBye(req *sip.Request, tx sip.ServerTransaction) {
	s := g.byCall(req.CallID().Value())
	if s == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	var err error
	if s.uas != nil {
		err = s.uas.ReadBye(req, tx)
	} else {
		err = s.uac.ReadBye(req, tx)
	}
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	s.setStatus(context.Background(), calls.Terminated, "hung up by the other party", "")
}

// onReinvite answers a re-INVITE of an established call (hold, resume, a
// new address) through the media plane, and tells the device of a hold or
// resume.
func (g *Gateway) onReinvite(req *sip.Request, tx sip.ServerTransaction) {
	s := g.byCall(req.CallID().Value())
	if s == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	ctx := context.Background()
	answer, err := s.media.UpdateFromSIP(ctx, string(req.Body()))
	if err != nil {
		s.log.WithError(err).Info("re-INVITE refused")
		_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		return
	}
	res := sip.NewSDPResponseFromRequest(req, []byte(answer))
	if s.uas != nil {
		res.AppendHeader(&s.g.dialogs.ContactHDR)
	}
	if err := tx.Respond(res); err != nil {
		s.log.WithError(err).Info("re-INVITE answer failed")
		return
	}
	held := heldBy(string(req.Body()))
	switch cur := s.status(); {
	case held && cur != calls.Hold:
		s.setStatus(ctx, calls.Hold, "held by the other party", "")
	case !held && cur == calls.Hold:
		s.setStatus(ctx, calls.Resume, "resumed by the other party", "")
	}
}

// mediaEnded hangs up a call whose media ended by itself. It returns at
// once: the media plane calls it while tearing the media down, which
// closing the media (part of ending the session) waits for.
func (s *session) mediaEnded(reason error) {
	go s.hangUpForMedia(reason)
}

func (s *session) hangUpForMedia(reason error) {
	s.log.WithError(reason).Info("media ended: hanging up")
	ctx := context.Background()
	if s.info.Role == calls.Originator {
		s.hangUpOutgoing(ctx, calls.Failed, "media: "+reason.Error())
		return
	}
	s.hangUpIncoming(ctx, calls.Failed, "media: "+reason.Error())
}
