// Package codec holds the audio codecs of the media plane: G.711 µ-law and
// A-law written here (ITU-T G.711), and Opus through libopus when the module
// is built with the tag "opus" (cgo, Debian libopus-dev).
package codec

import "math/bits"

// G.711 encoding is done through one 64 Ki-entry table per law, indexed by
// the 16-bit sample, and decoding through one 256-entry table per law: a
// 20 ms frame is then 160 table look-ups, no branches. The tables are built
// once at start-up from the segment algorithms below and never written again.
var (
	ulawDecodeTable = buildDecodeTable(ulawToLinear)
	alawDecodeTable = buildDecodeTable(alawToLinear)
	ulawEncodeTable = buildEncodeTable(linearToUlaw)
	alawEncodeTable = buildEncodeTable(linearToAlaw)
)

func buildDecodeTable(decode func(byte) int16) *[256]int16 {
	var t [256]int16
	for i := range t {
		t[i] = decode(byte(i))
	}
	return &t
}

func buildEncodeTable(encode func(int16) byte) *[65536]byte {
	var t [65536]byte
	for i := range t {
		t[i] = encode(int16(uint16(i)))
	}
	return &t
}

// EncodeUlaw writes one µ-law byte per sample of pcm into dst and returns how
// many it wrote: min(len(dst), len(pcm)).
func EncodeUlaw(dst []byte, pcm []int16) int {
	n := min(len(dst), len(pcm))
	for i, s := range pcm[:n] {
		dst[i] = ulawEncodeTable[uint16(s)]
	}
	return n
}

// DecodeUlaw writes one sample per µ-law byte of src into dst and returns how
// many it wrote: min(len(dst), len(src)).
func DecodeUlaw(dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	for i, b := range src[:n] {
		dst[i] = ulawDecodeTable[b]
	}
	return n
}

// EncodeAlaw writes one A-law byte per sample of pcm into dst and returns how
// many it wrote.
func EncodeAlaw(dst []byte, pcm []int16) int {
	n := min(len(dst), len(pcm))
	for i, s := range pcm[:n] {
		dst[i] = alawEncodeTable[uint16(s)]
	}
	return n
}

// DecodeAlaw writes one sample per A-law byte of src into dst and returns how
// many it wrote.
func DecodeAlaw(dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	for i, b := range src[:n] {
		dst[i] = alawDecodeTable[b]
	}
	return n
}

// µ-law (G.711 §2, table 2a): the magnitude plus a bias of 0x84 is split
// into a 3-bit segment (the position of its highest set bit above bit 7)
// and the 4 bits below it; the code word is sent inverted.
const (
	ulawBias = 0x84
	ulawClip = 32635
)

func linearToUlaw(sample int16) byte {
	s := int32(sample)
	var sign byte
	if s < 0 {
		sign = 0x80
		s = -s
	}
	s = min(s, ulawClip) + ulawBias
	segment := bits.Len32(uint32(s>>7)) - 1 // s ≥ 0x84, so s>>7 ≥ 1
	mantissa := byte(s>>(segment+3)) & 0x0f
	return ^(sign | byte(segment)<<4 | mantissa)
}

func ulawToLinear(code byte) int16 {
	code = ^code
	segment := (code >> 4) & 0x07
	mantissa := int32(code & 0x0f)
	magnitude := ((mantissa<<3)+ulawBias)<<segment - ulawBias
	if code&0x80 != 0 {
		return int16(-magnitude)
	}
	return int16(magnitude)
}

// A-law (G.711 §2, table 1a): 13-bit magnitudes, segment 0 and 1 linear,
// even bits inverted (XOR 0x55) on the wire.
func linearToAlaw(sample int16) byte {
	s := int32(sample) >> 3 // 13 significant bits
	mask := byte(0xd5)      // sign bit set for positive values
	if s < 0 {
		mask = 0x55
		s = -s - 1
	}
	if s > 0xfff {
		return 0x7f ^ mask // beyond the last segment: clip
	}
	segment := 0
	if s > 0x1f {
		segment = bits.Len32(uint32(s)) - 5
	}
	var code byte
	if segment < 2 {
		code = byte(segment<<4) | byte(s>>1)&0x0f
	} else {
		code = byte(segment<<4) | byte(s>>segment)&0x0f
	}
	return code ^ mask
}

func alawToLinear(code byte) int16 {
	code ^= 0x55
	magnitude := int32(code&0x0f) << 4
	segment := (code & 0x70) >> 4
	switch segment {
	case 0:
		magnitude += 8
	case 1:
		magnitude += 0x108
	default:
		magnitude = (magnitude + 0x108) << (segment - 1)
	}
	if code&0x80 != 0 {
		return int16(magnitude)
	}
	return int16(-magnitude)
}
