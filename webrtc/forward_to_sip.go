package webrtc

import (
	"time"

	"callpath/webrtc/codec"
	"callpath/webrtc/dtmf"
	"callpath/webrtc/rtpwire"
)

// toSIP carries the browser's packets onto the SIP leg. It belongs to the
// goroutine reading the browser's track.
type toSIP struct {
	s    *Session
	leg  *sipLeg
	out  *packetCounter
	seq  rtpwire.SequenceMapper
	mode Mode
	dtmf dtmf.Detector

	// Transcoding only (Opus → G.711).
	dec       *codec.OpusDecoder
	pcm       []int16
	frame     []byte // a whole outgoing packet: header and G.711 payload
	lastSeq   uint16 // of the last Opus packet decoded
	haveLast  bool
	frameSize int // samples per frame at 8 kHz, from the last decoded packet
}

// maxConcealed is how many lost Opus packets in a row are filled in by
// FEC/concealment; a longer gap is left as a gap (the SIP peer's jitter
// buffer sees the sequence numbers jump and does its own concealment).
const maxConcealed = 3

func newToSIP(s *Session) *toSIP {
	return &toSIP{s: s, leg: s.sip, out: newPacketCounter(s.eng.metrics, "sip", "out")}
}

func (f *toSIP) flush() { f.out.flush() }

// forward sends one browser packet (SRTP already removed) to the SIP peer.
// In relay mode the packet is rewritten where it lies and sent as is.
func (f *toSIP) forward(pkt []byte, h rtpwire.Header, p *plan) {
	if f.mode != p.mode {
		f.reset(p)
	}
	switch {
	case h.PayloadType == p.web.PayloadType:
		if p.mode == ModeRelay {
			if p.lawToSIP != nil {
				p.lawToSIP(pkt[h.PayloadStart:h.PayloadEnd])
			}
			seq, ts := f.seq.Map(h.SSRC, h.SequenceNumber, h.Timestamp)
			f.send(rtpwire.Rewrite(pkt, h, p.sip.PayloadType, h.Marker, seq, ts, f.leg.ssrc), ts)
			return
		}
		f.transcode(h, pkt[h.PayloadStart:h.PayloadEnd], p)
	default:
		for _, te := range p.webTE {
			if h.PayloadType == te.PayloadType {
				f.telephoneEvent(pkt, h, te.ClockRate, p)
				return
			}
		}
	}
}

func (f *toSIP) reset(p *plan) {
	f.mode, f.haveLast = p.mode, false
	if p.mode == ModeTranscode {
		f.seq = rtpwire.NewSequenceMapper(uint16(randomUint32()), randomUint32(), 1, 6, 160)
		return
	}
	f.seq = rtpwire.NewSequenceMapper(uint16(randomUint32()), randomUint32(), 1, 1, 160)
}

func (f *toSIP) send(pkt []byte, ts uint32) {
	if f.leg.send(pkt) {
		f.out.add(len(pkt))
		f.leg.stats.onSent(len(pkt)-rtpwire.FixedHeaderLen, ts)
	}
}

// transcode decodes Opus straight to 8 kHz (libopus resamples) and sends
// G.711. Up to maxConcealed lost packets before this one are filled in:
// from this packet's in-band FEC for the last of them, by concealment for
// the others, so the SIP peer gets a continuous stream.
func (f *toSIP) transcode(h rtpwire.Header, payload []byte, p *plan) {
	if f.dec == nil {
		dec, err := codec.NewOpusDecoder(sipClock)
		if err != nil {
			f.s.log.WithError(err).Error("media: opus decoder")
			return
		}
		// 120 ms is the longest Opus packet.
		f.dec, f.pcm, f.frame, f.frameSize = dec, make([]int16, 960), make([]byte, rtpwire.FixedHeaderLen+960), 160
	}
	if f.haveLast {
		if d := int16(h.SequenceNumber - f.lastSeq); d <= 0 {
			return // late or repeated: its time has passed
		}
	}
	seq, ts := f.seq.Map(h.SSRC, h.SequenceNumber, h.Timestamp)
	if gap := int(h.SequenceNumber-f.lastSeq) - 1; f.haveLast && gap > 0 && gap <= maxConcealed {
		for i := range gap {
			next := []byte(nil)
			if i == gap-1 {
				next = payload
			}
			pcm := f.pcm[:f.frameSize]
			start := time.Now()
			if err := f.dec.Conceal(next, pcm); err != nil {
				break
			}
			back := uint16(gap - i)
			f.sendPCM(pcm, p, false, seq-back, ts-uint32(back)*uint32(f.frameSize), start)
		}
	}
	f.lastSeq, f.haveLast = h.SequenceNumber, true
	start := time.Now()
	n, err := f.dec.Decode(payload, f.pcm)
	if err != nil || n == 0 {
		f.s.eng.metrics.Dropped("webrtc", dropTranscode, 1)
		return
	}
	f.frameSize = n
	f.sendPCM(f.pcm[:n], p, h.Marker, seq, ts, start)
}

// sendPCM encodes a decoded frame as G.711 and sends it; started is when
// the frame's decoding began, for the transcode-time metric.
func (f *toSIP) sendPCM(pcm []int16, p *plan, marker bool, seq uint16, ts uint32, started time.Time) {
	pkt := f.frame[:rtpwire.FixedHeaderLen+len(pcm)]
	rtpwire.PutHeader(pkt, p.sip.PayloadType, marker, seq, ts, f.leg.ssrc)
	if p.sip.Name == codecPCMA {
		codec.EncodeAlaw(pkt[rtpwire.FixedHeaderLen:], pcm)
	} else {
		codec.EncodeUlaw(pkt[rtpwire.FixedHeaderLen:], pcm)
	}
	f.s.eng.metrics.TranscodeTime("to_sip", time.Since(started))
	f.send(pkt, ts)
}

// telephoneEvent reports the browser's DTMF and sends it on to the SIP
// peer as telephone-event/8000: duration rescaled from the clock of the
// browser's telephone-event, timestamp mapped like the audio's (Chrome
// stamps events on the audio timeline even on the 8 kHz telephone-event
// beside Opus: notes/media-measurements.md §5.2).
func (f *toSIP) telephoneEvent(pkt []byte, h rtpwire.Header, clock uint32, p *plan) {
	payload := pkt[h.PayloadStart:h.PayloadEnd]
	e, err := dtmf.Parse(payload)
	if err != nil {
		return
	}
	if done, ok := f.dtmf.Observe(h.Timestamp, e); ok {
		f.s.reportDTMF("webrtc", done, clock)
	}
	seq, ts := f.seq.Map(h.SSRC, h.SequenceNumber, h.Timestamp)
	if p.sipTE.Name == "" {
		return
	}
	e.Duration = dtmf.Rescale(e.Duration, clock, sipClock)
	e.Put(payload)
	h.PayloadEnd = h.PayloadStart + dtmf.EventLen // redundant blocks, if any, are not carried
	f.send(rtpwire.Rewrite(pkt, h, p.sipTE.PayloadType, h.Marker, seq, ts, f.leg.ssrc), ts)
}
