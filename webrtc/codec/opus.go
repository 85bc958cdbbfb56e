//go:build opus

package codec

import (
	"fmt"

	"github.com/hraban/opus"
)

// OpusAvailable tells whether this build can encode and decode Opus, and so
// whether the media plane may offer Opus to a browser and transcode it.
const OpusAvailable = true

// OpusComplexity is the encoder complexity: 5 costs half of libopus's
// default (9) at 8 kHz with no audible loss for telephone-band speech
// (notes/media-measurements.md §1.2).
const OpusComplexity = 5

// OpusBitrate is the encoder's target: 16 kbit/s is transparent for what
// arrives from a 64 kbit/s G.711 leg.
const OpusBitrate = 16000

// OpusEncoder encodes mono PCM at the SIP leg's rate (8 kHz) into Opus.
// libopus does the rate conversion itself, so no resampler is needed;
// the RTP clock of the packets stays 48 kHz (RFC 7587 §4.1).
type OpusEncoder struct{ enc *opus.Encoder }

// NewOpusEncoder builds a VoIP encoder for mono PCM at sampleRate (8000,
// 12000, 16000, 24000 or 48000), complexity OpusComplexity, OpusBitrate.
func NewOpusEncoder(sampleRate int) (*OpusEncoder, error) {
	enc, err := opus.NewEncoder(sampleRate, 1, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOpus, err)
	}
	if err := enc.SetComplexity(OpusComplexity); err != nil {
		return nil, fmt.Errorf("%w: complexity: %w", ErrOpus, err)
	}
	if err := enc.SetBitrate(OpusBitrate); err != nil {
		return nil, fmt.Errorf("%w: bitrate: %w", ErrOpus, err)
	}
	return &OpusEncoder{enc: enc}, nil
}

// Encode encodes one frame (2.5, 5, 10, 20, 40 or 60 ms of samples) into dst
// and returns the packet's length.
func (e *OpusEncoder) Encode(pcm []int16, dst []byte) (int, error) {
	n, err := e.enc.Encode(pcm, dst)
	if err != nil {
		return 0, fmt.Errorf("%w: encode: %w", ErrOpus, err)
	}
	return n, nil
}

// OpusDecoder decodes Opus packets into mono PCM at the SIP leg's rate.
type OpusDecoder struct{ dec *opus.Decoder }

// NewOpusDecoder builds a mono decoder with output at sampleRate.
func NewOpusDecoder(sampleRate int) (*OpusDecoder, error) {
	dec, err := opus.NewDecoder(sampleRate, 1)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOpus, err)
	}
	return &OpusDecoder{dec: dec}, nil
}

// Decode decodes one packet into pcm and returns the number of samples.
func (d *OpusDecoder) Decode(packet []byte, pcm []int16) (int, error) {
	n, err := d.dec.Decode(packet, pcm)
	if err != nil {
		return 0, fmt.Errorf("%w: decode: %w", ErrOpus, err)
	}
	return n, nil
}

// Conceal fills pcm (exactly the missing duration) for a lost packet, from
// the in-band FEC of next when next is not nil, by concealment otherwise.
func (d *OpusDecoder) Conceal(next []byte, pcm []int16) error {
	pcm = pcm[:len(pcm):len(pcm)] // libopus is given cap(pcm) as the frame size
	var err error
	if len(next) > 0 {
		err = d.dec.DecodeFEC(next, pcm)
	} else {
		err = d.dec.DecodePLC(pcm)
	}
	if err != nil {
		return fmt.Errorf("%w: conceal: %w", ErrOpus, err)
	}
	return nil
}
