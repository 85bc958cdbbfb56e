package webrtc

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"callpath/webrtc/rtpwire"
	"callpath/webrtc/sdpaudio"
)

// sipLeg is a call's plain RTP/AVP side: an RTP and an RTCP socket, the
// peer's address as the SDP gave it and as latching learned it, and our
// SSRC toward it.
type sipLeg struct {
	s             *Session
	ports         portPair
	localPort     uint16
	localRTCPPort uint16
	ssrc          uint32

	// remote is where RTP goes: the SDP's address until latching learns
	// the address the peer really sends from (symmetric RTP, RFC 4961).
	remote     atomic.Pointer[netip.AddrPort]
	remoteRTCP atomic.Pointer[netip.AddrPort]
	// sdpRemote is the SDP's address; a new one (re-INVITE, another fork)
	// makes the reader latch again.
	sdpRemote atomic.Pointer[remoteSDP]
	latched   atomic.Bool
	// secure is DTLS-SRTP when the SIP side asked for it; nil for RTP/AVP.
	secure atomic.Pointer[sipDTLS]

	rx    atomic.Uint64 // RTP packets accepted from the peer
	stats *rtcpStats
}

// remoteSDP is what the SIP peer's SDP says about where it receives.
type remoteSDP struct {
	rtp, rtcp netip.AddrPort
	rtcpMux   bool
}

func newSIPLeg(s *Session, ports portPair) *sipLeg {
	l := &sipLeg{s: s, ports: ports, ssrc: randomUint32()}
	l.localPort = uint16(ports.rtp.LocalAddr().(*net.UDPAddr).Port)
	l.localRTCPPort = uint16(ports.rtcp.LocalAddr().(*net.UDPAddr).Port)
	l.stats = newRTCPStats(l.ssrc, sipClock)
	return l
}

// setRemote takes the peer's address from its SDP and starts latching
// afresh.
func (l *sipLeg) setRemote(a *sdpaudio.Audio) {
	r := &remoteSDP{rtp: netip.AddrPortFrom(a.Addr, a.Port), rtcpMux: a.RTCPMux}
	switch {
	case a.RTCPMux:
		r.rtcp = r.rtp
	case a.RTCPPort != 0:
		r.rtcp = netip.AddrPortFrom(a.Addr, a.RTCPPort)
	default:
		r.rtcp = netip.AddrPortFrom(a.Addr, a.Port+1)
	}
	l.sdpRemote.Store(r)
	l.latched.Store(false)
	l.remote.Store(&r.rtp)
	l.remoteRTCP.Store(&r.rtcp)
}

// latchPackets is how many consecutive valid packets of one SSRC from one
// unannounced address make it the peer's (a NATed peer sends from an
// address its SDP cannot know). A stray or spoofed packet or two is not
// enough, and once latched, other sources are ignored until the SDP
// changes.
const latchPackets = 3

// latcher is the RTP reader's latching state.
type latcher struct {
	for_      *remoteSDP // the SDP this state latches for
	candidate netip.AddrPort
	ssrc      uint32
	count     int
	addr      netip.AddrPort // latched address; valid once done
	done      bool
}

// accept tells whether a valid RTP packet from src belongs to the call,
// latching onto the peer's real address on the way.
func (l *sipLeg) accept(st *latcher, src netip.AddrPort, ssrc uint32) bool {
	sdp := l.sdpRemote.Load()
	if sdp == nil {
		return false
	}
	if st.for_ != sdp {
		*st = latcher{for_: sdp}
	}
	if st.done {
		return src == st.addr
	}
	switch {
	case src == sdp.rtp:
		// The address the SDP announced: no NAT in between.
	case src == st.candidate && ssrc == st.ssrc:
		st.count++
		if st.count < latchPackets {
			return false
		}
	default:
		st.candidate, st.ssrc, st.count = src, ssrc, 1
		return false
	}
	st.done, st.addr = true, src
	l.storeRemote(src, sdp)
	l.latched.Store(true)
	l.s.log.WithField("remote", src.String()).Debug("media: latched onto the SIP peer's address")
	return true
}

// storeRemote points the leg at the latched address. (A separate function
// so that only latching, not every packet, moves an address to the heap.)
func (l *sipLeg) storeRemote(src netip.AddrPort, sdp *remoteSDP) {
	rtp := src
	l.remote.Store(&rtp)
	switch {
	case sdp.rtcpMux:
		l.remoteRTCP.Store(&rtp)
	case src != sdp.rtp:
		// The RTCP socket of a NATed peer is mapped too: until its own
		// RTCP arrives, guess the port next to the RTP one.
		rtcp := netip.AddrPortFrom(src.Addr(), src.Port()+1)
		l.remoteRTCP.Store(&rtcp)
	}
}

// readRTP is the SIP leg's receive loop: RTP to the WebRTC leg, RTCP
// (when multiplexed) to the statistics.
func (l *sipLeg) readRTP() {
	buf := make([]byte, 1500)
	r := newSIPReader(l)
	defer r.flush()
	for {
		n, src, err := l.ports.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		r.packet(buf[:n], src)
	}
}

// sipReader is the state of the SIP leg's receive loop.
type sipReader struct {
	l     *sipLeg
	latch latcher
	fw    *toWebRTC
	in    *packetCounter
	drops *dropCounter
}

func newSIPReader(l *sipLeg) *sipReader {
	return &sipReader{l: l, fw: newToWebRTC(l.s), in: newPacketCounter(l.s.eng.metrics, "sip", "in"), drops: newDropCounter(l.s.eng.metrics, "sip")}
}

func (r *sipReader) flush() {
	r.in.flush()
	r.fw.flush()
	r.drops.flush()
}

// packet handles one datagram from src: checked, latched, counted and
// forwarded, or dropped.
func (r *sipReader) packet(pkt []byte, src netip.AddrPort) {
	l := r.l
	if sec := l.secure.Load(); sec != nil {
		var ok bool
		switch {
		case isDTLS(pkt):
			sec.deliver(pkt, src)
			return
		case rtpwire.IsRTCP(pkt):
			if pkt, ok = sec.unprotectRTCP(pkt); ok {
				l.handleRTCP(pkt, src)
			}
			return
		}
		if pkt, ok = sec.unprotect(pkt); !ok {
			r.drops.add(dropMalformed) // not from the authenticated peer, or before the keys
			return
		}
	}
	if rtpwire.IsRTCP(pkt) {
		l.handleRTCP(pkt, src)
		return
	}
	h, err := rtpwire.Parse(pkt)
	if err != nil {
		r.drops.add(dropMalformed)
		return
	}
	p := l.s.plan.Load()
	if p == nil || !p.receivesFromSIP(h.PayloadType) {
		r.drops.add(dropPayloadType)
		return
	}
	if !l.accept(&r.latch, src, h.SSRC) {
		r.drops.add(dropUnknownSource)
		return
	}
	l.rx.Add(1)
	r.in.add(len(pkt))
	if h.PayloadType == p.sip.PayloadType {
		l.stats.onReceived(h.SSRC, h.SequenceNumber, h.Timestamp, time.Now())
	}
	if p.toWebRTC {
		r.fw.forward(pkt, h, p)
	}
}

// readRTCP is the RTCP socket's receive loop. RTCP is accepted from the
// peer's IP address only.
func (l *sipLeg) readRTCP() {
	buf := make([]byte, 1500)
	for {
		n, src, err := l.ports.rtcp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		pkt := buf[:n]
		if sec := l.secure.Load(); sec != nil {
			var ok bool
			if pkt, ok = sec.unprotectRTCP(pkt); !ok {
				continue
			}
		}
		l.handleRTCP(pkt, src)
	}
}

func (l *sipLeg) handleRTCP(pkt []byte, src netip.AddrPort) {
	remote := l.remote.Load()
	if remote == nil || src.Addr() != remote.Addr() {
		return
	}
	if cur := l.remoteRTCP.Load(); cur == nil || *cur != src {
		rtcp := src
		l.remoteRTCP.Store(&rtcp) // symmetric RTCP: answer where it comes from
	}
	l.stats.handle(pkt, time.Now(), sipClock, func(fractionLost float64, jitter time.Duration) {
		l.s.eng.metrics.ReceptionReport("sip", fractionLost, jitter)
	})
}

// send writes one RTP packet to the peer.
func (l *sipLeg) send(pkt []byte) bool {
	remote := l.remote.Load()
	if remote == nil || !remote.Addr().IsValid() || remote.Addr().IsUnspecified() {
		return false
	}
	if sec := l.secure.Load(); sec != nil {
		var ok bool
		if pkt, ok = sec.protect(pkt); !ok {
			return false
		}
	}
	if _, err := l.ports.rtp.WriteToUDPAddrPort(pkt, *remote); err != nil {
		return false
	}
	return true
}

// sendRTCP writes one RTCP compound packet to the peer.
func (l *sipLeg) sendRTCP(pkt []byte) {
	remote := l.remoteRTCP.Load()
	sdp := l.sdpRemote.Load()
	if remote == nil || sdp == nil || remote.Addr().IsUnspecified() {
		return
	}
	if sec := l.secure.Load(); sec != nil {
		if !sdp.rtcpMux {
			// RTCP on its own port would need a DTLS association of its
			// own (RFC 5764 §4.1), which the plane does not run: the
			// peer could not decrypt what the RTP association keys.
			return
		}
		var ok bool
		if pkt, ok = sec.protectRTCP(pkt); !ok {
			return
		}
	}
	conn := l.ports.rtcp
	if sdp.rtcpMux {
		conn = l.ports.rtp
	}
	_, _ = conn.WriteToUDPAddrPort(pkt, *remote)
}

// receivesFromSIP tells whether the SIP peer may send this payload type.
func (p *plan) receivesFromSIP(pt uint8) bool {
	return pt == p.sip.PayloadType || (p.sipTE.Name != "" && (pt == p.sipTE.PayloadType || pt == p.sipTERecv)) || pt == 13 // CN, RFC 3389
}
