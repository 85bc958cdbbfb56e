package webrtc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"callpath/webrtc/rtpwire"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtcp"
	pion "github.com/pion/webrtc/v4"
)

// newPeerConnection builds the WebRTC leg with exactly the given codecs.
// Each call gets its own MediaEngine so that an answer lists only the
// telephone-event of the chosen codec's clock (DESIGN §4), and an
// interceptor chain with only RTCP reports: browsers want SR/RR, while
// NACK, TWCC and the stats interceptor cost per packet for nothing on an
// audio relay.
func (s *Session) newPeerConnection(codecs []pion.RTPCodecParameters) (*pion.PeerConnection, error) {
	m := &pion.MediaEngine{}
	for _, c := range codecs {
		if err := m.RegisterCodec(c, pion.RTPCodecTypeAudio); err != nil {
			return nil, fmt.Errorf("media: registering %s: %w", c.MimeType, err)
		}
	}
	// Sender reports from pion's interceptor; receiver reports from the
	// plane's own statistics (webStats): pion's receiver-report
	// interceptor allocates a header and a map per packet received.
	ir := &interceptor.Registry{}
	// Every RTCP report costs pion a dozen allocations: one every
	// RTCPInterval (RFC 3550 §6.2's 5 s), not pion's default of one a second.
	senderReports, err := report.NewSenderInterceptor(report.SenderInterval(s.eng.cfg.RTCPInterval))
	if err != nil {
		return nil, fmt.Errorf("media: rtcp sender reports: %w", err)
	}
	ir.Add(senderReports)
	api := pion.NewAPI(pion.WithMediaEngine(m), pion.WithSettingEngine(s.eng.settings), pion.WithInterceptorRegistry(ir))
	pc, err := api.NewPeerConnection(pion.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("media: peer connection: %w", err)
	}
	pc.OnTrack(s.onTrack)
	pc.OnICEConnectionStateChange(func(st pion.ICEConnectionState) {
		if st == pion.ICEConnectionStateConnected {
			s.iceUp.Store(true)
		}
	})
	pc.OnConnectionStateChange(s.onConnectionState)
	sender, err := pc.AddTrack(s.track)
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("media: adding the audio track: %w", err)
	}
	s.spawn(func() { s.readSenderRTCP(sender) })
	return pc, nil
}

// onConnectionState follows ICE+DTLS: connected ends the connect timer's
// watch; failed ends the session.
func (s *Session) onConnectionState(st pion.PeerConnectionState) {
	switch st {
	case pion.PeerConnectionStateConnected:
		if !s.up.Swap(true) {
			s.log.Debug("media: webrtc leg connected")
		}
	case pion.PeerConnectionStateFailed:
		if s.iceUp.Load() {
			s.eng.metrics.SetupFailed("dtls")
			s.end(ErrDTLSFailed)
			return
		}
		s.eng.metrics.SetupFailed("ice")
		s.end(ErrICEFailed)
	}
}

// armConnectTimer starts the wait for ICE and DTLS once both descriptions
// are set (under s.mu).
func (s *Session) armConnectTimer() {
	s.connectTimer = time.AfterFunc(s.eng.cfg.ConnectTimeout, func() {
		if s.up.Load() {
			return
		}
		s.eng.metrics.SetupFailed("ice_timeout")
		s.end(ErrICETimeout)
	})
}

// onTrack starts reading the browser's audio (one track: the first).
func (s *Session) onTrack(track *pion.TrackRemote, receiver *pion.RTPReceiver) {
	if track.Kind() != pion.RTPCodecTypeAudio {
		return
	}
	s.spawn(func() { s.readTrack(track) })
	s.spawn(func() { s.readReceiverRTCP(receiver) })
}

// readTrack is the browser→SIP packet path.
func (s *Session) readTrack(track *pion.TrackRemote) {
	buf := make([]byte, 1500)
	r := newTrackReader(s)
	defer r.flush()
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
				return
			}
			select {
			case <-s.done:
				return
			default:
				continue
			}
		}
		r.packet(buf[:n])
	}
}

// trackReader is the state of the browser→SIP packet path.
type trackReader struct {
	s  *Session
	fw *toSIP
	in *packetCounter
}

func newTrackReader(s *Session) *trackReader {
	return &trackReader{s: s, fw: newToSIP(s), in: newPacketCounter(s.eng.metrics, "webrtc", "in")}
}

func (r *trackReader) flush() {
	r.in.flush()
	r.fw.flush()
}

// packet handles one decrypted packet of the browser's track.
func (r *trackReader) packet(pkt []byte) {
	h, err := rtpwire.Parse(pkt)
	if err != nil {
		return
	}
	r.s.webrtcRx.Add(1)
	r.in.add(len(pkt))
	p := r.s.plan.Load()
	if p == nil {
		return
	}
	if h.PayloadType == p.web.PayloadType {
		r.s.webStats.onReceived(h.SSRC, h.SequenceNumber, h.Timestamp, time.Now())
	}
	if p.toSIP {
		r.fw.forward(pkt, h, p)
	}
}

// readSenderRTCP drains the browser's RTCP about our stream (receiver
// reports), which also feeds pion's interceptors.
func (s *Session) readSenderRTCP(sender *pion.RTPSender) {
	buf := make([]byte, 1500)
	for {
		n, _, err := sender.Read(buf)
		if err != nil {
			return
		}
		packets, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		clock := uint32(sipClock)
		if p := s.plan.Load(); p != nil {
			clock = p.web.ClockRate
		}
		receptionReports(packets, s.track.ssrc(), clock, func(fraction float64, jitter time.Duration) {
			s.eng.metrics.ReceptionReport("webrtc", fraction, jitter)
		})
	}
}

// readReceiverRTCP reads the browser's sender reports, for the LSR/DLSR
// fields of our receiver reports.
func (s *Session) readReceiverRTCP(receiver *pion.RTPReceiver) {
	buf := make([]byte, 1500)
	for {
		n, _, err := receiver.Read(buf)
		if err != nil {
			return
		}
		s.webStats.handle(buf[:n], time.Now(), 0, nil)
	}
}

// localDescription sets desc as the local description and waits, up to
// ctx, for candidate gathering (immediate for ICE-lite on the shared port)
// so the SDP carries the candidates: the signalling does not trickle.
func (s *Session) localDescription(ctx context.Context, pc *pion.PeerConnection, desc pion.SessionDescription) (string, error) {
	gathered := pion.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(desc); err != nil {
		return "", fmt.Errorf("media: local description: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("media: gathering candidates: %w", ctx.Err())
	}
	return pc.LocalDescription().SDP, nil
}
