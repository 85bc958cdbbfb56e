package mediatest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"callpath/webrtc/codec"
	"callpath/webrtc/dtmf"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// Phone is a plain RTP/AVP SIP phone's media: one UDP socket on
// 127.0.0.1, G.711 with a tone or silence every 20 ms, RFC 4733 digits
// on payload type 101, and an Ear for what comes back.
type Phone struct {
	Ear   Ear
	Tone  Tone
	conn  *net.UDPConn
	codec string // "PCMU" or "PCMA"
	// announced is the address the phone's SDP gives: its socket's, or
	// another one when it plays a phone behind NAT.
	announced netip.AddrPort
	decoy     *net.UDPConn

	remote  atomic.Pointer[netip.AddrPort]
	toneOn  atomic.Bool
	started atomic.Bool
	paused  atomic.Bool
	digits  chan rune
	sources sync.Map // netip.AddrPort -> struct{}: where packets came from
	// RTCPMux makes the phone announce a=rtcp-mux (set before SDP): RTCP
	// then comes to its one socket, and it answers each sender report
	// with a receiver report.
	RTCPMux  bool
	rtcpSeen atomic.Int64
	secure   *phoneDTLS // DTLS-SRTP, for a phone made by NewSecurePhone
	stop     chan struct{}
	wg       sync.WaitGroup
}

// PhoneTE is the phone's telephone-event payload type.
const PhoneTE = 101

// NewPhone starts a phone speaking codec ("PCMU" or "PCMA"); it sends
// nothing until Start.
func NewPhone(t testing.TB, codecName string) *Phone {
	t.Helper()
	return newPhone(t, codecName, nil)
}

// newPhone binds the phone's socket and starts its receive loop, with
// DTLS-SRTP when secure is not nil.
func newPhone(t testing.TB, codecName string, secure *phoneDTLS) *Phone {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &Phone{conn: conn, codec: codecName, digits: make(chan rune, 16), stop: make(chan struct{}),
		Tone: Tone{Freq: 1000, Rate: 8000, Amplitude: 8000}}
	p.announced = conn.LocalAddr().(*net.UDPAddr).AddrPort()
	if secure != nil {
		secure.conn, p.secure, p.RTCPMux = conn, secure, true
	}
	p.wg.Add(1)
	go p.receive()
	t.Cleanup(p.Close)
	return p
}

// BehindNAT makes the phone announce another address than the one it
// sends from, as a phone behind NAT does: packets sent to the announced
// address are lost.
func (p *Phone) BehindNAT(t testing.TB) {
	t.Helper()
	decoy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p.decoy, p.announced = decoy, decoy.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Addr is the address the phone sends from.
func (p *Phone) Addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Close stops the phone.
func (p *Phone) Close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	if p.secure != nil {
		p.secure.close()
	}
	_ = p.conn.Close()
	if p.decoy != nil {
		_ = p.decoy.Close()
	}
	p.wg.Wait()
}

func (p *Phone) pt() uint8 {
	if p.codec == "PCMA" {
		return 8
	}
	return 0
}

// SDP is the phone's offer or answer: its codec and telephone-event/8000.
func (p *Phone) SDP() string { return p.SDPWith("sendrecv", 1) }

// SDPWith is the phone's SDP with a direction attribute and an origin
// version (raise it for each new offer: RFC 3264 §8).
func (p *Phone) SDPWith(direction string, version int) string {
	a := p.announced
	return fmt.Sprintf("v=0\r\no=phone 1 %d IN IP4 %s\r\ns=phone\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d %s %d %d\r\na=rtpmap:%d %s/8000\r\na=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\na=ptime:20\r\na=%s\r\n%s",
		version, a.Addr(), a.Addr(), a.Port(), p.proto(), p.pt(), PhoneTE, p.pt(), p.codec, PhoneTE, PhoneTE, direction, p.muxLine())
}

func (p *Phone) proto() string {
	if p.secure != nil {
		return "UDP/TLS/RTP/SAVP"
	}
	return "RTP/AVP"
}

func (p *Phone) muxLine() string {
	lines := ""
	if p.RTCPMux {
		lines += "a=rtcp-mux\r\n"
	}
	if p.secure != nil {
		lines += "a=fingerprint:" + p.secure.fingerprint + "\r\na=setup:" + p.secure.setup + "\r\n"
	}
	return lines
}

// RTCPReports is how many RTCP sender reports the phone has received.
func (p *Phone) RTCPReports() int { return int(p.rtcpSeen.Load()) }

// answerRTCP counts a sender report and answers it with a receiver report
// about the sender's stream (loss 1/256, jitter 80 samples: values the
// test can recognise).
func (p *Phone) answerRTCP(pkt []byte, src netip.AddrPort) {
	packets, err := rtcp.Unmarshal(pkt)
	if err != nil {
		return
	}
	for _, q := range packets {
		sr, ok := q.(*rtcp.SenderReport)
		if !ok {
			continue
		}
		p.rtcpSeen.Add(1)
		rr, err := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 0x5eed, Reports: []rtcp.ReceptionReport{{SSRC: sr.SSRC, FractionLost: 1, Jitter: 80}}}})
		if err != nil {
			continue
		}
		if p.secure != nil {
			if rr = p.secure.protectRTCP(rr); rr == nil {
				continue
			}
		}
		_, _ = p.conn.WriteToUDPAddrPort(rr, src)
	}
}

// RemoteFrom reads the address to send to out of the other side's SDP
// (pion's parser, not the media plane's) and checks it lists the phone's
// codec.
func RemoteFrom(raw, codecName string) (netip.AddrPort, error) {
	var s sdp.SessionDescription
	if err := s.UnmarshalString(raw); err != nil {
		return netip.AddrPort{}, err
	}
	for _, m := range s.MediaDescriptions {
		if m.MediaName.Media != "audio" || m.MediaName.Port.Value == 0 {
			continue
		}
		c := s.ConnectionInformation
		if m.ConnectionInformation != nil {
			c = m.ConnectionInformation
		}
		if c == nil || c.Address == nil {
			return netip.AddrPort{}, errors.New("no connection address")
		}
		addr, err := netip.ParseAddr(c.Address.Address)
		if err != nil {
			return netip.AddrPort{}, err
		}
		found := false
		for _, a := range m.Attributes {
			if a.Key == "rtpmap" && strings.Contains(a.Value, codecName+"/8000") {
				found = true
			}
		}
		for _, f := range m.MediaName.Formats {
			if (f == "0" && codecName == "PCMU") || (f == "8" && codecName == "PCMA") {
				found = true
			}
		}
		if !found {
			return netip.AddrPort{}, fmt.Errorf("%s not in %v", codecName, m.MediaName.Formats)
		}
		return netip.AddrPortFrom(addr, uint16(m.MediaName.Port.Value)), nil
	}
	return netip.AddrPort{}, errors.New("no audio stream")
}

// StartTo starts the phone sending to the address of the other side's SDP
// (which must list the phone's codec) and returns that address.
func (p *Phone) StartTo(t testing.TB, peerSDP string) netip.AddrPort {
	t.Helper()
	remote, err := RemoteFrom(peerSDP, p.codec)
	if err != nil {
		t.Fatalf("the other side's SDP: %v\n%s", err, peerSDP)
	}
	p.Start(remote)
	return remote
}

// Start sends to remote every 20 ms until Close or Pause (and again
// after a Pause).
func (p *Phone) Start(remote netip.AddrPort) {
	p.remote.Store(&remote)
	p.paused.Store(false)
	if p.started.Swap(true) {
		return
	}
	p.wg.Add(1)
	go p.send()
}

// Pause stops sending (the phone goes silent on the network).
func (p *Phone) Pause() { p.paused.Store(true) }

// ToneOn switches the tone on (true) or sends silence (false).
func (p *Phone) ToneOn(on bool) { p.toneOn.Store(on) }

// SendDigits queues RFC 4733 digits, sent one after the other.
func (p *Phone) SendDigits(digits string) {
	for _, d := range digits {
		p.digits <- d
	}
}

// SawSource tells whether a packet came from addr.
func (p *Phone) SawSource(addr netip.AddrPort) bool {
	_, ok := p.sources.Load(addr)
	return ok
}

func (p *Phone) send() {
	defer p.wg.Done()
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	ssrc, seq, ts := uint32(0x5eed), uint16(100), uint32(8000)
	pcm := make([]int16, 160)
	var events []dtmf.Event
	var eventTS uint32
	for {
		select {
		case <-p.stop:
			return
		case <-ticker.C:
		}
		if p.paused.Load() {
			continue
		}
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: ssrc, SequenceNumber: seq, Timestamp: ts}}
		seq++
		if len(events) == 0 {
			select {
			case d := <-p.digits:
				code, _ := dtmf.Code(d)
				events, eventTS = dtmf.Packets(code, 1600, 160, 10), ts
				pkt.Marker = true
			default:
			}
		}
		if len(events) > 0 {
			var b [dtmf.EventLen]byte
			events[0].Put(b[:])
			events = events[1:]
			pkt.PayloadType, pkt.Timestamp, pkt.Payload = PhoneTE, eventTS, b[:]
		} else {
			if p.toneOn.Load() {
				p.Tone.Fill(pcm)
			} else {
				clear(pcm)
			}
			payload := make([]byte, 160)
			if p.codec == "PCMA" {
				codec.EncodeAlaw(payload, pcm)
			} else {
				codec.EncodeUlaw(payload, pcm)
			}
			pkt.PayloadType, pkt.Payload = p.pt(), payload
		}
		ts += 160
		b, err := pkt.Marshal()
		if err != nil {
			continue
		}
		if p.secure != nil {
			if b = p.secure.protect(b); b == nil {
				continue // no keys yet
			}
		}
		_, _ = p.conn.WriteToUDPAddrPort(b, *p.remote.Load())
	}
}

func (p *Phone) receive() {
	defer p.wg.Done()
	buf := make([]byte, 1500)
	pcm := make([]int16, 1500)
	var det dtmf.Detector
	for {
		n, src, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		p.sources.Store(src, struct{}{})
		raw := buf[:n]
		if p.secure != nil {
			if n > 0 && buf[0] >= 20 && buf[0] <= 63 { // DTLS (RFC 7983)
				p.secure.deliver(raw)
				continue
			}
			if raw = p.secure.unprotect(raw); raw == nil {
				continue
			}
		}
		if len(raw) >= 2 && raw[1] >= 200 && raw[1] <= 204 { // RTCP on the RTP port (RFC 5761)
			p.answerRTCP(raw, src)
			continue
		}
		var pkt rtp.Packet
		if pkt.Unmarshal(raw) != nil {
			continue
		}
		switch pkt.PayloadType {
		case p.pt():
			var k int
			if p.codec == "PCMA" {
				k = codec.DecodeAlaw(pcm, pkt.Payload)
			} else {
				k = codec.DecodeUlaw(pcm, pkt.Payload)
			}
			p.Ear.Hear(pcm[:k])
		case PhoneTE:
			e, err := dtmf.Parse(pkt.Payload)
			if err != nil {
				continue
			}
			if done, ok := det.Observe(pkt.Timestamp, e); ok {
				d, _ := dtmf.Digit(done.Code)
				p.Ear.Digit(d)
			}
		}
	}
}
