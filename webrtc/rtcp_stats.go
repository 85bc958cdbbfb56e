package webrtc

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
)

// rtcpStats keeps what RTCP needs on a leg (RFC 3550 §6.4): the
// reception statistics of the peer's stream (appendix A.1, A.3, A.8) and
// the counts of ours, and writes the reports. On the SIP leg it writes the
// sender and receiver reports a plain RTP peer expects; on the WebRTC leg
// the receiver reports only (pion's sender interceptor writes the SRs):
// pion's receiver-report interceptor allocates twice per packet.
type rtcpStats struct {
	ourSSRC atomic.Uint32
	clock   atomic.Int64 // RTP clock of the stream received
	cname   string

	mu            sync.Mutex
	haveSource    bool
	sourceSSRC    uint32
	baseSeq       uint32
	maxSeq        uint16
	cycles        uint32
	received      uint32
	expectedPrior uint32
	receivedPrior uint32
	lastTransit   int64
	jitter        float64 // in timestamp units
	lastSR        uint32  // middle 32 bits of the last SR's NTP time
	lastSRAt      time.Time

	// Written by the packet path toward SIP, read by the reporter.
	sentPackets atomic.Uint32
	sentOctets  atomic.Uint32
	lastSentTS  atomic.Uint32
	lastSentAt  atomic.Int64 // unix nanoseconds
}

// sipClock is the RTP clock of every codec on the SIP leg (G.711).
const sipClock = 8000

func newRTCPStats(ssrc, clock uint32) *rtcpStats {
	r := &rtcpStats{cname: "callpath"}
	r.ourSSRC.Store(ssrc)
	r.clock.Store(int64(clock))
	return r
}

// onReceived updates the reception statistics with one RTP packet.
func (r *rtcpStats) onReceived(ssrc uint32, seq uint16, ts uint32, at time.Time) {
	arrival := at.UnixNano() / 1000 * r.clock.Load() / 1e6 // µs first: ns × 48000 would overflow
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.haveSource || ssrc != r.sourceSSRC {
		r.haveSource, r.sourceSSRC = true, ssrc
		r.baseSeq, r.maxSeq, r.cycles, r.received = uint32(seq), seq, 0, 0
		r.expectedPrior, r.receivedPrior, r.jitter = 0, 0, 0
		r.lastTransit = arrival - int64(ts)
	}
	r.received++
	if delta := seq - r.maxSeq; delta < 0x8000 { // in order, maybe with a gap
		if seq < r.maxSeq {
			r.cycles += 1 << 16
		}
		r.maxSeq = seq
	}
	transit := arrival - int64(ts)
	d := transit - r.lastTransit
	r.lastTransit = transit
	if d < 0 {
		d = -d
	}
	r.jitter += (float64(d) - r.jitter) / 16
}

// onSent counts one RTP packet sent to the peer.
func (r *rtcpStats) onSent(payloadLen int, ts uint32) {
	r.sentPackets.Add(1)
	r.sentOctets.Add(uint32(payloadLen))
	r.lastSentTS.Store(ts)
	r.lastSentAt.Store(time.Now().UnixNano())
}

// report builds the compound RTCP packet to send now: an SR when we have
// sent (and withSR), an RR otherwise, with a reception block once the peer
// has sent, and the SDES CNAME every compound packet must carry (§6.1).
func (r *rtcpStats) report(now time.Time, withSR bool) []rtcp.Packet {
	var blocks []rtcp.ReceptionReport
	r.mu.Lock()
	if r.haveSource {
		extMax := r.cycles + uint32(r.maxSeq)
		expected := extMax - r.baseSeq + 1
		lost := int64(expected) - int64(r.received)
		lost = max(min(lost, 0x7fffff), -0x800000)
		expectedInterval := expected - r.expectedPrior
		receivedInterval := r.received - r.receivedPrior
		r.expectedPrior, r.receivedPrior = expected, r.received
		var fraction uint8
		if lostInterval := int64(expectedInterval) - int64(receivedInterval); expectedInterval > 0 && lostInterval > 0 {
			fraction = uint8(lostInterval << 8 / int64(expectedInterval))
		}
		var dlsr uint32
		if !r.lastSRAt.IsZero() {
			dlsr = uint32(now.Sub(r.lastSRAt).Seconds() * 65536)
		}
		blocks = append(blocks, rtcp.ReceptionReport{
			SSRC: r.sourceSSRC, FractionLost: fraction, TotalLost: uint32(lost) & 0xffffff,
			LastSequenceNumber: extMax, Jitter: uint32(r.jitter), LastSenderReport: r.lastSR, Delay: dlsr,
		})
	}
	r.mu.Unlock()

	ssrc := r.ourSSRC.Load()
	var first rtcp.Packet
	if packets := r.sentPackets.Load(); packets > 0 && withSR {
		elapsed := now.UnixNano() - r.lastSentAt.Load()
		first = &rtcp.SenderReport{
			SSRC: ssrc, NTPTime: ntpTime(now),
			RTPTime:     r.lastSentTS.Load() + uint32(elapsed*sipClock/int64(time.Second)),
			PacketCount: packets, OctetCount: r.sentOctets.Load(), Reports: blocks,
		}
	} else {
		first = &rtcp.ReceiverReport{SSRC: ssrc, Reports: blocks}
	}
	sdes := &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
		Source: ssrc, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: r.cname}},
	}}}
	return []rtcp.Packet{first, sdes}
}

// handle reads an RTCP compound packet from the peer: the time of its
// SR (for our LSR/DLSR) and what its reception blocks say of our stream,
// whose clock is sendClock.
func (r *rtcpStats) handle(pkt []byte, at time.Time, sendClock uint32, report func(fractionLost float64, jitter time.Duration)) {
	packets, err := rtcp.Unmarshal(pkt)
	if err != nil {
		return
	}
	for _, p := range packets {
		if sr, ok := p.(*rtcp.SenderReport); ok {
			r.mu.Lock()
			r.lastSR, r.lastSRAt = uint32(sr.NTPTime>>16), at
			r.mu.Unlock()
		}
	}
	receptionReports(packets, r.ourSSRC.Load(), sendClock, report)
}

// receptionReports calls report for each reception block about ssrc in
// packets, with the jitter converted from clock units.
func receptionReports(packets []rtcp.Packet, ssrc, clock uint32, report func(float64, time.Duration)) {
	var blocks []rtcp.ReceptionReport
	for _, p := range packets {
		switch p := p.(type) {
		case *rtcp.SenderReport:
			blocks = append(blocks, p.Reports...)
		case *rtcp.ReceiverReport:
			blocks = append(blocks, p.Reports...)
		}
	}
	for _, b := range blocks {
		if b.SSRC != ssrc || clock == 0 {
			continue
		}
		report(float64(b.FractionLost)/256, time.Duration(float64(b.Jitter)/float64(clock)*float64(time.Second)))
	}
}

// ntpTime is t in the 64-bit NTP format of SRs (RFC 3550 §4).
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800 // 1900-01-01 to 1970-01-01 in seconds
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}
