package webrtc

import (
	"time"

	"callpath/webrtc/codec"
	"callpath/webrtc/dtmf"
	"callpath/webrtc/rtpwire"

	"github.com/pion/rtp"
)

// toWebRTC carries the SIP peer's packets onto the WebRTC leg. It belongs
// to the SIP leg's reader goroutine; nothing else touches it.
type toWebRTC struct {
	s      *Session
	out    *packetCounter
	header rtp.Header // reused for every packet: no allocation
	seq    rtpwire.SequenceMapper
	mode   Mode // the mode seq was set up for
	dtmf   dtmf.Detector
	event  [dtmf.EventLen]byte

	// Transcoding only (G.711 → Opus).
	enc  *codec.OpusEncoder
	pcm  []int16
	opus []byte
}

func newToWebRTC(s *Session) *toWebRTC {
	return &toWebRTC{s: s, out: newPacketCounter(s.eng.metrics, "webrtc", "out"), header: rtp.Header{Version: 2}}
}

func (f *toWebRTC) flush() { f.out.flush() }

// forward sends one packet of the SIP peer (already parsed and accepted)
// to the browser: audio relayed or transcoded, telephone-events re-timed.
func (f *toWebRTC) forward(pkt []byte, h rtpwire.Header, p *plan) {
	if f.mode != p.mode {
		f.reset(p)
	}
	payload := pkt[h.PayloadStart:h.PayloadEnd]
	switch {
	case h.PayloadType == p.sip.PayloadType:
		if p.mode == ModeRelay {
			if p.lawToWebRTC != nil {
				p.lawToWebRTC(payload)
			}
			seq, ts := f.seq.Map(h.SSRC, h.SequenceNumber, h.Timestamp)
			f.write(p.web.PayloadType, h.Marker, seq, ts, payload)
			return
		}
		f.transcode(h, payload, p)
	case p.sipTE.Name != "" && (h.PayloadType == p.sipTE.PayloadType || h.PayloadType == p.sipTERecv):
		f.telephoneEvent(h, payload, p)
	}
}

// reset sets the sequence mapping up for the plan's mode: the Opus leg's
// clock is six times G.711's.
func (f *toWebRTC) reset(p *plan) {
	f.mode = p.mode
	if p.mode == ModeTranscode {
		f.seq = rtpwire.NewSequenceMapper(uint16(randomUint32()), randomUint32(), 6, 1, 960)
		return
	}
	f.seq = rtpwire.NewSequenceMapper(uint16(randomUint32()), randomUint32(), 1, 1, 160)
}

func (f *toWebRTC) write(pt uint8, marker bool, seq uint16, ts uint32, payload []byte) {
	f.header.PayloadType, f.header.Marker = pt, marker
	f.header.SequenceNumber, f.header.Timestamp = seq, ts
	if ok, _ := f.s.track.WriteRTP(&f.header, payload); ok {
		f.out.add(rtpwire.FixedHeaderLen + len(payload))
	}
}

// transcode decodes G.711 and encodes Opus at 8 kHz, in 20 ms frames (a
// frame size Opus has; a 30 ms G.711 packet becomes a 20 and a 10 ms one).
func (f *toWebRTC) transcode(h rtpwire.Header, payload []byte, p *plan) {
	if f.enc == nil {
		enc, err := codec.NewOpusEncoder(sipClock)
		if err != nil {
			f.s.log.WithError(err).Error("media: opus encoder")
			return
		}
		f.enc, f.pcm, f.opus = enc, make([]int16, 480), make([]byte, 1000)
	}
	if len(payload) > len(f.pcm) || len(payload)%80 != 0 {
		return // not a whole number of 10 ms frames: nothing Opus can take
	}
	pcm := f.pcm[:len(payload)]
	start := time.Now()
	if p.sip.Name == codecPCMA {
		codec.DecodeAlaw(pcm, payload)
	} else {
		codec.DecodeUlaw(pcm, payload)
	}
	for first := true; len(pcm) > 0; first = false {
		frame := pcm[:min(len(pcm), 160)]
		pcm = pcm[len(frame):]
		if !first {
			start = time.Now()
		}
		n, err := f.enc.Encode(frame, f.opus)
		f.s.eng.metrics.TranscodeTime("to_webrtc", time.Since(start))
		var seq uint16
		var ts uint32
		if first {
			seq, ts = f.seq.Map(h.SSRC, h.SequenceNumber, h.Timestamp)
		} else {
			seq, ts = f.seq.Next(uint32(len(frame)) * 6)
		}
		if err != nil {
			continue
		}
		f.write(p.web.PayloadType, h.Marker && first, seq, ts, f.opus[:n])
	}
}

// telephoneEvent reports a SIP peer's DTMF and sends it on to the browser
// on the telephone-event of the browser's codec clock, its duration
// rescaled to that clock (RFC 4733 §2.5.1.4: durations are in the
// payload format's clock).
func (f *toWebRTC) telephoneEvent(h rtpwire.Header, payload []byte, p *plan) {
	e, err := dtmf.Parse(payload)
	if err != nil {
		return
	}
	if done, ok := f.dtmf.Observe(h.Timestamp, e); ok {
		f.s.reportDTMF("sip", done, sipClock)
	}
	seq, ts := f.seq.Map(h.SSRC, h.SequenceNumber, h.Timestamp)
	if len(p.webTE) == 0 {
		return
	}
	te := p.webTE[0]
	e.Duration = dtmf.Rescale(e.Duration, sipClock, te.ClockRate)
	e.Put(f.event[:])
	f.write(te.PayloadType, h.Marker, seq, ts, f.event[:])
}

// reportDTMF hands a finished digit to the OnDTMF callback.
func (s *Session) reportDTMF(leg string, e dtmf.Event, clock uint32) {
	if s.opts.OnDTMF == nil || clock == 0 {
		return
	}
	digit, ok := dtmf.Digit(e.Code)
	if !ok {
		return
	}
	s.opts.OnDTMF(leg, digit, time.Duration(e.Duration)*time.Second/time.Duration(clock))
}
