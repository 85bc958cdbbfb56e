package webrtc

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"callpath/webrtc/rtpwire"
	"callpath/webrtc/sdpaudio"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// relayRig is a relayed PCMU session with its packet paths wired to real
// sockets: the SIP leg sends to a UDP socket standing for the phone, and
// the WebRTC leg's track is bound to a writer that SRTP-encrypts (pion's
// cipher, AES-CM/HMAC-SHA1-80) and sends to another UDP socket, as pion's
// own writer does once DTLS is up.
type relayRig struct {
	s             *Session
	phone, client *net.UDPConn
	toSIP         *trackReader
	fromSIP       *sipReader
	phoneAddr     netip.AddrPort
	browserPacket []byte // a plaintext PCMU packet as pion hands it over
	phonePacket   []byte
}

func newRelayRig(tb testing.TB) *relayRig {
	tb.Helper()
	eng, err := NewEngine(context.Background(), Config{ICEListen: "127.0.0.1:0", RTPListenIP: "127.0.0.1"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = eng.Close(context.Background()) })
	s, err := eng.NewSession(context.Background(), SessionOptions{ID: "rig"})
	if err != nil {
		tb.Fatal(err)
	}
	// The rig drives the packet paths itself: stop the session's own SIP
	// reader from taking the packets by not sending to its socket.
	phone := listenLoopback(tb)
	client := listenLoopback(tb)
	phoneAddr := phone.LocalAddr().(*net.UDPAddr).AddrPort()
	s.sip.setRemote(&sdpaudio.Audio{Addr: phoneAddr.Addr(), Port: phoneAddr.Port()})
	pcmu := sdpaudio.Format{PayloadType: 0, Name: codecPCMU, ClockRate: 8000}
	te := sdpaudio.Format{PayloadType: 101, Name: telephoneEvent, ClockRate: 8000}
	s.plan.Store(&plan{codecs: codecs{mode: ModeRelay, sip: pcmu, web: pcmu, sipTE: te, webTE: []sdpaudio.Format{{PayloadType: 126, Name: telephoneEvent, ClockRate: 8000}}},
		toSIP: true, toWebRTC: true, expectSIP: true, expectWebRTC: true, sipTERecv: 101})
	key := make([]byte, 16)
	salt := make([]byte, 14)
	ctx, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		tb.Fatal(err)
	}
	s.track.binding.Store(&trackBinding{ssrc: 0xb0b, writer: &srtpWriter{ctx: ctx, conn: client, to: client.LocalAddr().(*net.UDPAddr).AddrPort(),
		plain: make([]byte, 1500), cipher: make([]byte, 1500)}})
	r := &relayRig{s: s, phone: phone, client: client, phoneAddr: phoneAddr, toSIP: newTrackReader(s), fromSIP: newSIPReader(s.sip)}
	r.browserPacket = marshal(tb, rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 1, Timestamp: 160, SSRC: 77}, Payload: make([]byte, 160)})
	r.phonePacket = marshal(tb, rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 1, Timestamp: 160, SSRC: 88}, Payload: make([]byte, 160)})
	go drain(phone)
	go drain(client)
	return r
}

// nextPacket advances a template packet's sequence number and timestamp
// and copies it into buf, as a new arrival would fill the read buffer.
func nextPacket(template, buf []byte) []byte {
	h, _ := rtpwire.Parse(template)
	rtpwire.PutHeader(template, h.PayloadType, false, h.SequenceNumber+1, h.Timestamp+160, h.SSRC)
	return buf[:copy(buf, template)]
}

func listenLoopback(tb testing.TB) *net.UDPConn {
	tb.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func drain(c *net.UDPConn) {
	buf := make([]byte, 1500)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

func marshal(tb testing.TB, p rtp.Packet) []byte {
	tb.Helper()
	b, err := p.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// srtpWriter is a pion TrackLocalWriter that encrypts into its own
// buffers and sends: the work pion's SRTP write stream does per packet.
type srtpWriter struct {
	ctx           *srtp.Context
	conn          *net.UDPConn
	to            netip.AddrPort
	plain, cipher []byte
}

func (w *srtpWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	n, err := h.MarshalTo(w.plain)
	if err != nil {
		return 0, err
	}
	n += copy(w.plain[n:], payload)
	out, err := w.ctx.EncryptRTP(w.cipher, w.plain[:n], h)
	if err != nil {
		return 0, err
	}
	return w.conn.WriteToUDPAddrPort(out, w.to)
}

func (w *srtpWriter) Write(b []byte) (int, error) { return w.conn.WriteToUDPAddrPort(b, w.to) }

// The relay's per-packet work allocates nothing, in both directions:
// parse, latch check, statistics, header rewrite, SRTP encryption and the
// UDP send.
func TestRelayAllocatesNothingPerPacket(t *testing.T) {
	r := newRelayRig(t)
	buf := make([]byte, 1500)
	if allocs := testing.AllocsPerRun(2000, func() { r.toSIP.packet(nextPacket(r.browserPacket, buf)) }); allocs != 0 {
		t.Errorf("browser → SIP: %v allocations per packet", allocs)
	}
	if allocs := testing.AllocsPerRun(2000, func() { r.fromSIP.packet(nextPacket(r.phonePacket, buf), r.phoneAddr) }); allocs != 0 {
		t.Errorf("SIP → browser: %v allocations per packet", allocs)
	}
	if got := r.s.sip.rx.Load(); got < 2000 {
		t.Errorf("only %d SIP packets accepted: the rig measured drops, not the relay", got)
	}
	if sent := r.s.sip.stats.sentPackets.Load(); sent < 2000 {
		t.Errorf("only %d packets sent to the phone", sent)
	}
}

func BenchmarkRelayPacketToSIP(b *testing.B) {
	r := newRelayRig(b)
	buf := make([]byte, 1500)
	b.ReportAllocs()
	for b.Loop() {
		r.toSIP.packet(nextPacket(r.browserPacket, buf))
	}
}

func BenchmarkRelayPacketToWebRTC(b *testing.B) {
	r := newRelayRig(b)
	buf := make([]byte, 1500)
	b.ReportAllocs()
	for b.Loop() {
		r.fromSIP.packet(nextPacket(r.phonePacket, buf), r.phoneAddr)
	}
}
