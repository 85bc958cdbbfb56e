package webrtc

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"callpath/webrtc/sdpaudio"

	pion "github.com/pion/webrtc/v4"
	"github.com/sirupsen/logrus"
)

// SessionOptions are the per-call parts of a session.
type SessionOptions struct {
	// ID names the call in logs (the B2BUA's call id).
	ID string
	// OnEnd is called once, in its own goroutine, when the session ends by
	// itself (ErrMediaTimeout, ErrICETimeout, ErrICEFailed, ErrDTLSFailed),
	// so the caller can hang up. It is not called after Close.
	OnEnd func(reason error)
	// SIPSecure makes the SIP offer of a browser's call DTLS-SRTP
	// (UDP/TLS/RTP/SAVP, a=fingerprint, a=setup:actpass, RTCP-mux): the
	// operator asks for "WebRTC style" media toward every SIP peer. A
	// plain offer a peer refuses with 488 can be made again secure
	// (SecureSIPOffer); SIP offers say themselves what they want.
	SIPSecure bool
	// OnDTMF is called from the packet path for each RFC 4733 digit a leg
	// ("webrtc", "sip") sent, whether or not the other leg can take it. It
	// must not block.
	OnDTMF func(leg string, digit rune, duration time.Duration)
}

// sessionState is where a session is in its offer/answer exchange.
type sessionState uint8

const (
	stateNew           sessionState = iota
	stateWebRTCOffered              // browser offer taken, SIP offer out
	stateSIPOffered                 // SIP offer taken, WebRTC offer out
	stateActive                     // both legs negotiated
)

// Session bridges one call's WebRTC leg and SIP leg. Its methods are safe
// for concurrent use; the offer/answer ones must come in the order the
// package documentation shows.
type Session struct {
	eng  *Engine
	log  *logrus.Entry
	opts SessionOptions

	// Negotiation state, under mu.
	mu              sync.Mutex
	state           sessionState
	browserOffer    *sdpaudio.Description // browser-originated calls
	browserOfferRaw string
	sipOffered      []sdpaudio.Format     // what we offered the SIP side
	sipOffer        *sdpaudio.Description // SIP-originated calls
	lastSIPAnswer   *sdpaudio.Description
	webrtcAnswer    string // our answer to the browser, repeated for a second SIP answer
	sipAnswer       string // our answer to the SIP side, repeated for a repeated WebRTC answer
	lastWebAnswer   string
	sdpID           uint64
	sdpVersion      uint64
	pc              *pion.PeerConnection
	connectTimer    *time.Timer
	dirs            directions
	sipReoffered    Direction // our direction in the last SIPReoffer
	sipSetup        string    // our a=setup on a DTLS-SRTP SIP leg; empty for RTP/AVP
	sipSecure       bool      // our SIP offer of a browser's call is DTLS-SRTP
	sipTERecv       uint8     // the telephone-event payload type we announced to the SIP side

	track    *outTrack
	sip      *sipLeg
	webStats *rtcpStats // reception statistics of the browser's stream
	plan     atomic.Pointer[plan]

	// Counted by the packet paths, read by the supervisor.
	webrtcRx atomic.Uint64
	iceUp    atomic.Bool // ICE reached connected at least once
	up       atomic.Bool // ICE and DTLS connected

	started atomic.Bool // SessionStarted counted
	// answered holds the unix nanoseconds of Answered, 0 before.
	answered atomic.Int64
	done     chan struct{}
	endOnce  sync.Once
	endErr   error
	tornDown chan struct{}
	spawnMu  sync.Mutex
	ending   bool
	workers  sync.WaitGroup
}

// plan is what the packet paths do now; negotiation swaps in a new one.
type plan struct {
	codecs
	// toSIP and toWebRTC allow forwarding into each leg (hold stops one).
	toSIP, toWebRTC bool
	// expectSIP and expectWebRTC tell which legs should be sending, for
	// the media timeout.
	expectSIP, expectWebRTC bool
	// sipTERecv is the telephone-event payload type we announced to the SIP
	// side: what it sends to us (it may differ from sipTE's, which it
	// announced).
	sipTERecv uint8
	// lawToSIP and lawToWebRTC convert a relayed G.711 payload in place
	// when the legs speak different laws; nil when they speak the same.
	lawToSIP, lawToWebRTC func([]byte)
}

// NewSession prepares a call's media: its SIP leg's ports are bound now,
// its WebRTC leg when the first offer arrives.
func (e *Engine) NewSession(ctx context.Context, opts SessionOptions) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	ports, err := e.ports.allocate()
	if err != nil {
		return nil, err
	}
	s := &Session{
		eng: e, opts: opts,
		log:      e.log.WithField("call_id", opts.ID),
		sdpID:    uint64(randomUint32()),
		track:    newOutTrack(opts.ID),
		done:     make(chan struct{}),
		tornDown: make(chan struct{}),
	}
	s.sip = newSIPLeg(s, ports)
	s.webStats = newRTCPStats(0, sipClock)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.ports.release(ports)
		return nil, ErrClosed
	}
	e.sessions[s] = struct{}{}
	e.mu.Unlock()
	s.spawn(s.sip.readRTP)
	s.spawn(s.sip.readRTCP)
	return s, nil
}

// Done is closed when the session has ended.
// Answered tells the plane that the call has been answered (the SIP
// side's 200, or the device's Connected): from then on a leg that should
// send and has never sent anything is timed out too (before, silence is
// ringing).
func (s *Session) Answered() { s.answered.CompareAndSwap(0, time.Now().UnixNano()) }

func (s *Session) answeredAt() time.Time {
	if ns := s.answered.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended (ErrClosed after Close), nil before.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.endErr
	default:
		return nil
	}
}

// Close ends the session and waits, up to ctx, until its sockets are
// closed and its goroutines have returned.
func (s *Session) Close(ctx context.Context) error {
	s.end(ErrClosed)
	select {
	case <-s.tornDown:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("media: closing session %s: %w", s.opts.ID, ctx.Err())
	}
}

// spawn runs f in a goroutine the session's end waits for, unless the
// session is already ending.
func (s *Session) spawn(f func()) {
	s.spawnMu.Lock()
	defer s.spawnMu.Unlock()
	if s.ending {
		return
	}
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		f()
	}()
}

// end ends the session once with reason; teardown runs in the
// background, so end is safe to call from pion's callbacks.
func (s *Session) end(reason error) {
	s.endOnce.Do(func() {
		s.endErr = reason
		close(s.done)
		go s.teardown(reason)
	})
}

func (s *Session) teardown(reason error) {
	defer close(s.tornDown)
	s.spawnMu.Lock()
	s.ending = true
	s.spawnMu.Unlock()

	s.mu.Lock()
	pc, timer := s.pc, s.connectTimer
	s.mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
	if pc != nil {
		if err := pc.Close(); err != nil {
			s.log.WithError(err).Debug("media: closing the peer connection")
		}
	}
	s.eng.ports.release(s.sip.ports) // unblocks the SIP leg's readers
	s.workers.Wait()
	s.eng.forget(s)

	if p := s.plan.Load(); p != nil && s.started.Load() {
		s.eng.metrics.SessionEnded(p.label(), p.mode.String(), endLabel(reason))
	}
	if errors.Is(reason, ErrClosed) {
		s.log.Debug("media: session closed")
		return
	}
	s.log.WithError(reason).Info("media: session ended")
	if s.opts.OnEnd != nil {
		s.opts.OnEnd(reason)
	}
}

// endLabel is the metric label of an end reason.
func endLabel(reason error) string {
	switch {
	case errors.Is(reason, ErrMediaTimeout):
		return "media_timeout"
	case errors.Is(reason, ErrICETimeout):
		return "ice_timeout"
	case errors.Is(reason, ErrICEFailed):
		return "ice_failed"
	case errors.Is(reason, ErrDTLSFailed):
		return "dtls_failed"
	default:
		return "closed"
	}
}

// Info describes a session's media for logs, CDRs and tests.
type Info struct {
	Mode      Mode
	Codec     string // "PCMU", "PCMA", "opus/PCMU", …
	SIPLocal  netip.AddrPort
	SIPRemote netip.AddrPort // where RTP goes: latched, or from the SDP
	Latched   bool           // the SIP peer's source address was learned
	Connected bool           // ICE and DTLS are up on the WebRTC leg
	// ToSIP and ToWebRTC tell whether media is forwarded into each leg now
	// (hold stops one or both).
	ToSIP, ToWebRTC bool
	// Packets received from each leg.
	WebRTCPackets, SIPPackets uint64
}

// Info returns the session's current state.
func (s *Session) Info() Info {
	i := Info{
		SIPLocal:      netip.AddrPortFrom(s.eng.rtpAddr, s.sip.localPort),
		Connected:     s.up.Load(),
		WebRTCPackets: s.webrtcRx.Load(),
		SIPPackets:    s.sip.rx.Load(),
		Latched:       s.sip.latched.Load(),
	}
	if r := s.sip.remote.Load(); r != nil {
		i.SIPRemote = *r
	}
	if p := s.plan.Load(); p != nil {
		i.Mode, i.Codec = p.mode, p.label()
		i.ToSIP, i.ToWebRTC = p.toSIP, p.toWebRTC
	}
	return i
}
