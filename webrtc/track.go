package webrtc

import (
	"strings"
	"sync/atomic"

	"github.com/pion/rtp"
	pion "github.com/pion/webrtc/v4"
)

// outTrack is the WebRTC leg's outgoing audio. pion's static tracks stamp
// every packet with the payload type of the one codec they were bound to;
// this one keeps the payload type it is given, so audio and RFC 4733
// telephone-events share one SSRC and one timeline as RFC 4733 §2.1 wants.
type outTrack struct {
	id, streamID string
	binding      atomic.Pointer[trackBinding]
}

type trackBinding struct {
	ssrc   uint32
	writer pion.TrackLocalWriter
}

func newOutTrack(id string) *outTrack {
	return &outTrack{id: "audio", streamID: id}
}

// Bind takes the first audio codec negotiated: which one it is, the
// session learns from the answer; pion only needs the binding to succeed.
func (t *outTrack) Bind(ctx pion.TrackLocalContext) (pion.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, "audio/"+telephoneEvent) {
			t.binding.Store(&trackBinding{ssrc: uint32(ctx.SSRC()), writer: ctx.WriteStream()})
			return c, nil
		}
	}
	return pion.RTPCodecParameters{}, pion.ErrUnsupportedCodec
}

// Unbind stops writes until the next Bind.
func (t *outTrack) Unbind(pion.TrackLocalContext) error {
	t.binding.Store(nil)
	return nil
}

// ID, RID, StreamID and Kind describe the track to pion (msid).
func (t *outTrack) ID() string       { return t.id }
func (t *outTrack) RID() string      { return "" }
func (t *outTrack) StreamID() string { return t.streamID }
func (t *outTrack) Kind() pion.RTPCodecType {
	return pion.RTPCodecTypeAudio
}

// WriteRTP sends one packet with the bound SSRC; before binding (DTLS not
// up yet) packets are dropped, as a browser would not get them anyway.
func (t *outTrack) WriteRTP(h *rtp.Header, payload []byte) (bool, error) {
	b := t.binding.Load()
	if b == nil {
		return false, nil
	}
	h.SSRC = b.ssrc
	_, err := b.writer.WriteRTP(h, payload)
	return err == nil, err
}

// ssrc is the bound SSRC, zero before binding.
func (t *outTrack) ssrc() uint32 {
	if b := t.binding.Load(); b != nil {
		return b.ssrc
	}
	return 0
}
