package webrtcgw

import (
	"context"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/sirupsen/logrus"

	"callpath/calls"
)

// session is one media session: the CAMARA view (info), its media, and its
// SIP dialog toward the B2BUA (uac for an outgoing call, uas for an
// incoming one).
type session struct {
	g      *Gateway
	owner  string // the subscriber
	callID string // of the SIP dialog (changed under g.mu by rekey)
	log    *logrus.Entry
	media  Media

	changeMu sync.Mutex // one device status change at a time

	mu      sync.Mutex
	info    calls.Session
	alerted bool   // a 180 came (outgoing) or was sent (incoming)
	sipSDP  string // incoming: our SDP answer toward SIP, once made
	over    bool   // ended: the status is terminal

	// Outgoing calls.
	receiver  string // the INVITE's user part
	sessionID string // its Session-ID (RFC 7989), kept when it is sent again
	// offeredSecure: the INVITE offers DTLS-SRTP (a 488 to it is final).
	// Set before runOutgoing starts and by it only.
	offeredSecure bool
	uac           *sipgo.DialogClientSession
	cancelOut     context.CancelFunc // stops waiting for the answer: CANCEL
	cancelledAs   calls.Status       // the status a cancelled call ends in
	cancelReason  string

	// ended is closed when the session reaches a terminal status.
	ended chan struct{}

	// Incoming calls: the device's decisions reach the INVITE's handler.
	uas      *sipgo.DialogServerSession
	decision chan decision
	answered chan struct{} // closed when 200 OK has gone out
}

// decision is what the device (or the gateway) decided for an incoming
// call that has not been answered: decline it with code.
type decision struct {
	status calls.Status
	reason string
}

func (s *session) snapshot() calls.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

// setStatus moves the session to status (with a reason for the device)
// and tells the subscriber; a terminal status is set once and closes the
// media. Called without s.mu.
func (s *session) setStatus(ctx context.Context, status calls.Status, reason string, answer string) {
	s.mu.Lock()
	if s.over {
		s.mu.Unlock()
		return
	}
	s.info.Status, s.info.Reason = status, reason
	if answer != "" && s.info.Answer == "" {
		s.info.Answer = answer
	}
	s.info.Sequence++
	if status.Terminal() {
		s.over = true
		close(s.ended)
		s.info.EndedAt = time.Now()
	}
	snap := s.info
	s.mu.Unlock()
	s.log.WithFields(logrus.Fields{"status": status, "reason": reason}).Debug("media session status")
	if _, err := s.g.notify.Notify(context.WithoutCancel(ctx), snap, false); err != nil {
		s.log.WithError(err).Warn("session-status could not be recorded")
	}
	if status.Terminal() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.media.Close(closeCtx); err != nil {
			s.log.WithError(err).Debug("closing the media")
		}
		s.g.ended(s)
	}
}

// status returns the current status.
func (s *session) status() calls.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info.Status
}

// hangUp ends the call from the gateway's side, whatever its state.
func (s *session) hangUp(ctx context.Context, why string) {
	end := calls.Failed
	if s.status().Established() {
		end = calls.Terminated
	}
	if s.info.Role == calls.Originator {
		s.hangUpOutgoing(ctx, end, why)
		return
	}
	s.hangUpIncoming(ctx, end, why)
}
