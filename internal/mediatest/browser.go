package mediatest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"callpath/webrtc/codec"
	"callpath/webrtc/dtmf"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Browser is a WebRTC client made of a full pion PeerConnection (ICE with
// loopback candidates only, DTLS-SRTP, the default interceptors), standing
// in for Chrome: it offers or answers with the given codecs, sends a tone
// or silence every 20 ms and RFC 4733 digits, and has an Ear.
type Browser struct {
	Ear  Ear
	Tone Tone
	pc   *webrtc.PeerConnection
	out  *rawTrack

	toneOn atomic.Bool
	rrSeen atomic.Int64 // receiver reports about the browser's stream
	digits chan rune
	stop   chan struct{}
	wg     sync.WaitGroup
	start  sync.Once
}

// Chrome's payload types (notes/media-measurements.md §5.2).
var browserCodecs = map[string]webrtc.RTPCodecParameters{
	"opus": {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111},
	"PCMU": {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0},
	"PCMA": {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}, PayloadType: 8},
	"te48": {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/telephone-event", ClockRate: 48000, SDPFmtpLine: "0-16"}, PayloadType: 110},
	"te8":  {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/telephone-event", ClockRate: 8000, SDPFmtpLine: "0-16"}, PayloadType: 126},
}

// NewBrowser builds a client knowing codecs ("opus", "PCMU", "PCMA") in
// that order of preference, plus both telephone-events, as Chrome does.
func NewBrowser(t testing.TB, codecs ...string) *Browser {
	t.Helper()
	m := &webrtc.MediaEngine{}
	for _, name := range append(codecs, "te48", "te8") {
		c, ok := browserCodecs[name]
		if !ok {
			t.Fatalf("unknown codec %q", name)
		}
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)).
		NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	b := &Browser{pc: pc, out: &rawTrack{}, digits: make(chan rune, 16), stop: make(chan struct{}),
		Tone: Tone{Freq: 1000, Rate: 8000, Amplitude: 8000}}
	sender, err := pc.AddTrack(b.out)
	if err != nil {
		t.Fatal(err)
	}
	b.wg.Add(1)
	go b.readRTCP(sender)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		b.wg.Add(1)
		go b.receive(tr)
	})
	t.Cleanup(b.Close)
	return b
}

// Close hangs up.
func (b *Browser) Close() {
	select {
	case <-b.stop:
		return
	default:
	}
	close(b.stop)
	_ = b.pc.Close()
	b.wg.Wait()
}

// Offer returns the client's offer, candidates included.
func (b *Browser) Offer(t testing.TB) string {
	t.Helper()
	offer, err := b.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.setLocal(t, offer)
}

// Reoffer returns a new offer with the direction attribute replaced, as
// a browser on hold offers sendonly or inactive; its answer goes to
// Accept. (pion cannot set a transceiver's direction, so its own local
// description keeps sendrecv: only the SDP sent out says otherwise.)
func (b *Browser) Reoffer(t testing.TB, direction string) string {
	t.Helper()
	offer, err := b.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	sdp := b.setLocal(t, offer)
	return strings.Replace(sdp, "a=sendrecv", "a="+direction, 1)
}

// Accept applies the answer to Offer and starts sending.
func (b *Browser) Accept(t testing.TB, answer string) {
	t.Helper()
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	b.startSending(t)
}

// Answer answers an offer and starts sending.
func (b *Browser) Answer(t testing.TB, offer string) string {
	t.Helper()
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatal(err)
	}
	answer, err := b.pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	sdp := b.setLocal(t, answer)
	b.startSending(t)
	return sdp
}

func (b *Browser) setLocal(t testing.TB, desc webrtc.SessionDescription) string {
	t.Helper()
	gathered := webrtc.GatheringCompletePromise(b.pc)
	if err := b.pc.SetLocalDescription(desc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	select {
	case <-gathered:
	case <-ctx.Done():
		t.Fatal("candidate gathering did not complete")
	}
	return b.pc.LocalDescription().SDP
}

// WaitConnected waits until ICE and DTLS are up.
func (b *Browser) WaitConnected(t testing.TB, within time.Duration) {
	t.Helper()
	Eventually(t, within, func() (bool, string) {
		st := b.pc.ConnectionState()
		return st == webrtc.PeerConnectionStateConnected, st.String()
	}, "the browser connects")
}

// ToneOn switches the tone on (true) or sends silence (false).
func (b *Browser) ToneOn(on bool) { b.toneOn.Store(on) }

// SendDigits queues RFC 4733 digits.
func (b *Browser) SendDigits(digits string) {
	for _, d := range digits {
		b.digits <- d
	}
}

// ReceiverReports is how many RTCP receiver reports about the browser's
// stream have arrived.
func (b *Browser) ReceiverReports() int { return int(b.rrSeen.Load()) }

func (b *Browser) readRTCP(sender *webrtc.RTPSender) {
	defer b.wg.Done()
	for {
		packets, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range packets {
			if rr, ok := p.(*rtcp.ReceiverReport); ok && len(rr.Reports) > 0 {
				b.rrSeen.Add(1)
			}
		}
	}
}

// Codec is the negotiated audio codec's encoding name.
func (b *Browser) Codec() string { return b.out.codec().MimeType }

// negotiated finds the negotiated audio codec and the telephone-event at
// its clock among the sender's parameters.
func (b *Browser) negotiated() (audio, te webrtc.RTPCodecParameters, err error) {
	for _, tr := range b.pc.GetTransceivers() {
		for _, c := range tr.Sender().GetParameters().Codecs {
			isTE := strings.EqualFold(c.MimeType, "audio/telephone-event")
			switch {
			case !isTE && audio.MimeType == "":
				audio = c
			case isTE && te.MimeType == "":
				te = c
			}
		}
		for _, c := range tr.Sender().GetParameters().Codecs {
			if strings.EqualFold(c.MimeType, "audio/telephone-event") && c.ClockRate == audio.ClockRate {
				te = c
			}
		}
	}
	if audio.MimeType == "" {
		return audio, te, fmt.Errorf("no audio codec negotiated")
	}
	return audio, te, nil
}

func (b *Browser) startSending(t testing.TB) {
	t.Helper()
	audio, te, err := b.negotiated()
	if err != nil {
		t.Fatal(err)
	}
	b.start.Do(func() {
		b.wg.Add(1)
		go b.send(audio, te)
	})
}

func (b *Browser) send(audio, te webrtc.RTPCodecParameters) {
	defer b.wg.Done()
	isOpus := strings.EqualFold(audio.MimeType, webrtc.MimeTypeOpus)
	var enc *codec.OpusEncoder
	step := uint32(160)
	if isOpus {
		var err error
		if enc, err = codec.NewOpusEncoder(8000); err != nil {
			return
		}
		step = 960
	}
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	seq, ts := uint16(1), uint32(48000)
	pcm := make([]int16, 160)
	var events []dtmf.Event
	var eventTS uint32
	for {
		select {
		case <-b.stop:
			return
		case <-ticker.C:
		}
		h := rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts}
		seq++
		if len(events) == 0 && te.MimeType != "" {
			select {
			case d := <-b.digits:
				code, _ := dtmf.Code(d)
				// 200 ms, updates every 20 ms, in the event clock's units
				// (Chrome with the telephone-event of its codec's clock).
				unit := uint16(te.ClockRate / 50)
				events, eventTS, h.Marker = dtmf.Packets(code, 10*unit, unit, 10), ts, true
			default:
			}
		}
		var payload []byte
		if len(events) > 0 {
			payload = make([]byte, dtmf.EventLen)
			events[0].Put(payload)
			events = events[1:]
			h.PayloadType, h.Timestamp = uint8(te.PayloadType), eventTS
		} else {
			if b.toneOn.Load() {
				b.Tone.Fill(pcm)
			} else {
				clear(pcm)
			}
			payload = make([]byte, 400)
			switch {
			case isOpus:
				n, err := enc.Encode(pcm, payload)
				if err != nil {
					continue
				}
				payload = payload[:n]
			case strings.EqualFold(audio.MimeType, webrtc.MimeTypePCMA):
				payload = payload[:codec.EncodeAlaw(payload, pcm)]
			default:
				payload = payload[:codec.EncodeUlaw(payload, pcm)]
			}
			h.PayloadType = uint8(audio.PayloadType)
		}
		ts += step
		_ = b.out.write(&h, payload)
	}
}

func (b *Browser) receive(tr *webrtc.TrackRemote) {
	defer b.wg.Done()
	var dec *codec.OpusDecoder
	pcm := make([]int16, 2000)
	var det dtmf.Detector
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		codecOf := b.codecOf(pkt.PayloadType)
		switch {
		case strings.EqualFold(codecOf.MimeType, "audio/telephone-event"):
			e, err := dtmf.Parse(pkt.Payload)
			if err != nil {
				continue
			}
			if done, ok := det.Observe(pkt.Timestamp, e); ok {
				d, _ := dtmf.Digit(done.Code)
				b.Ear.Digit(d)
			}
		case strings.EqualFold(codecOf.MimeType, webrtc.MimeTypeOpus):
			if dec == nil {
				if dec, err = codec.NewOpusDecoder(8000); err != nil {
					return
				}
			}
			n, err := dec.Decode(pkt.Payload, pcm)
			if err != nil {
				continue
			}
			b.Ear.Hear(pcm[:n])
		case strings.EqualFold(codecOf.MimeType, webrtc.MimeTypePCMA):
			b.Ear.Hear(pcm[:codec.DecodeAlaw(pcm, pkt.Payload)])
		case strings.EqualFold(codecOf.MimeType, webrtc.MimeTypePCMU):
			b.Ear.Hear(pcm[:codec.DecodeUlaw(pcm, pkt.Payload)])
		}
	}
}

func (b *Browser) codecOf(pt uint8) webrtc.RTPCodecParameters {
	for _, tr := range b.pc.GetTransceivers() {
		for _, c := range tr.Receiver().GetParameters().Codecs {
			if uint8(c.PayloadType) == pt {
				return c
			}
		}
	}
	return webrtc.RTPCodecParameters{}
}

// rawTrack is a local track written with explicit payload types (audio
// and telephone-event on one SSRC), as a browser sends them.
type rawTrack struct {
	mu     sync.Mutex
	ssrc   uint32
	writer webrtc.TrackLocalWriter
	bound  webrtc.RTPCodecParameters
}

func (r *rawTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, "audio/telephone-event") {
			r.ssrc, r.writer, r.bound = uint32(ctx.SSRC()), ctx.WriteStream(), c
			return c, nil
		}
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

func (r *rawTrack) Unbind(webrtc.TrackLocalContext) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writer = nil
	return nil
}

func (r *rawTrack) ID() string                { return "audio" }
func (r *rawTrack) RID() string               { return "" }
func (r *rawTrack) StreamID() string          { return "browser" }
func (r *rawTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeAudio }

func (r *rawTrack) codec() webrtc.RTPCodecParameters {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bound
}

func (r *rawTrack) write(h *rtp.Header, payload []byte) error {
	r.mu.Lock()
	w, ssrc := r.writer, r.ssrc
	r.mu.Unlock()
	if w == nil {
		return nil
	}
	h.SSRC = ssrc
	_, err := w.WriteRTP(h, payload)
	return err
}
