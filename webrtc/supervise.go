package webrtc

import (
	"time"

	"github.com/pion/rtcp"
)

// supervise runs for an active session: it sends the SIP leg's RTCP and
// ends the session when a leg that should be sending has been silent for
// the media timeout.
func (s *Session) supervise() {
	rtcpInterval := s.eng.cfg.RTCPInterval
	tick := min(time.Second, rtcpInterval)
	timeout := s.eng.cfg.MediaTimeout
	if timeout > 0 && timeout/4 < tick {
		tick = max(timeout/4, 10*time.Millisecond)
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()

	watch := []*silenceWatch{
		{leg: "sip", count: s.sip.rx.Load, expected: func(p *plan) bool { return p.expectSIP }},
		{leg: "webrtc", count: s.webrtcRx.Load, expected: func(p *plan) bool { return p.expectWebRTC }},
	}
	nextRTCP := time.Now().Add(rtcpInterval)
	for {
		select {
		case <-s.done:
			return
		case now := <-ticker.C:
			p := s.plan.Load()
			answered := s.answeredAt()
			for _, w := range watch {
				if timeout > 0 && w.silent(now, p, timeout, answered) {
					s.log.WithField("leg", w.leg).Info("media: no rtp within the media timeout")
					s.end(ErrMediaTimeout)
					return
				}
			}
			if !now.Before(nextRTCP) {
				nextRTCP = now.Add(rtcpInterval)
				if pkt, err := rtcp.Marshal(s.sip.stats.report(now, true)); err == nil {
					s.sip.sendRTCP(pkt)
				}
				s.sendWebRTCReport(now)
			}
		}
	}
}

// silenceWatch follows one leg's packet count between ticks.
type silenceWatch struct {
	leg      string
	count    func() uint64
	expected func(*plan) bool
	last     uint64
	since    time.Time // when the count last moved, or the leg became expected
}

// silent tells whether the leg should be sending and has sent nothing for
// timeout. Before the call is answered (see Session.Answered) a leg is
// timed from its first packet on: a SIP callee may ring for a minute after
// its 183 without sending anything, and the plane cannot tell the 183's
// answer from the 200's. Once answered, a leg that never sent anything is
// timed from the answer (a WebRTC leg that never connects is ended by the
// connect timeout first). A leg on hold (not expected to send) is not
// timed, and the clock restarts when it is expected again.
func (w *silenceWatch) silent(now time.Time, p *plan, timeout time.Duration, answered time.Time) bool {
	n := w.count()
	if n != w.last || !w.expected(p) || n == 0 && answered.IsZero() {
		w.last, w.since = n, now
		return false
	}
	if n == 0 && w.since.Before(answered) {
		w.since = answered
	}
	return now.Sub(w.since) >= timeout
}

// sendWebRTCReport sends the browser a receiver report about its stream
// once it has sent one.
func (s *Session) sendWebRTCReport(now time.Time) {
	ssrc := s.track.ssrc()
	if ssrc == 0 || s.webrtcRx.Load() == 0 {
		return
	}
	s.webStats.ourSSRC.Store(ssrc)
	s.mu.Lock()
	pc := s.pc
	s.mu.Unlock()
	if pc != nil {
		_ = pc.WriteRTCP(s.webStats.report(now, false))
	}
}
