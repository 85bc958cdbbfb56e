package codec

import (
	"math"
	"testing"
)

// Fixed points of the two laws (G.711 tables 1a/2a): the code words of
// silence, of the extremes and of the smallest steps.
func TestG711KnownValues(t *testing.T) {
	for _, c := range []struct {
		name string
		got  int16
		want int16
	}{
		{"ulaw 0xff", ulawToLinear(0xff), 0},
		{"ulaw 0x7f", ulawToLinear(0x7f), 0},
		{"ulaw 0x80", ulawToLinear(0x80), 32124},
		{"ulaw 0x00", ulawToLinear(0x00), -32124},
		{"ulaw 0xfe", ulawToLinear(0xfe), 8},
		{"alaw 0xd5", alawToLinear(0xd5), 8},
		{"alaw 0x55", alawToLinear(0x55), -8},
		{"alaw 0xaa", alawToLinear(0xaa), 32256},
		{"alaw 0x2a", alawToLinear(0x2a), -32256},
	} {
		if c.got != c.want {
			t.Errorf("%s decodes to %d, want %d", c.name, c.got, c.want)
		}
	}
	for _, c := range []struct {
		name string
		got  byte
		want byte
	}{
		{"ulaw(0)", linearToUlaw(0), 0xff},
		{"ulaw(32767)", linearToUlaw(32767), 0x80},
		{"ulaw(-32768)", linearToUlaw(-32768), 0x00},
		{"alaw(0)", linearToAlaw(0), 0xd5},
		{"alaw(-1)", linearToAlaw(-1), 0x55},
		{"alaw(32767)", linearToAlaw(32767), 0xaa},
		{"alaw(-32768)", linearToAlaw(-32768), 0x2a},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

// Every code word decodes to a value that encodes back to it (µ-law's
// negative zero 0x7f aside, which encodes as positive zero 0xff).
func TestG711CodeWordsRoundTrip(t *testing.T) {
	for i := range 256 {
		c := byte(i)
		if c != 0x7f && linearToUlaw(ulawToLinear(c)) != c {
			t.Errorf("ulaw %#x -> %d -> %#x", c, ulawToLinear(c), linearToUlaw(ulawToLinear(c)))
		}
		if linearToAlaw(alawToLinear(c)) != c {
			t.Errorf("alaw %#x -> %d -> %#x", c, alawToLinear(c), linearToAlaw(alawToLinear(c)))
		}
	}
}

// Encoding is monotonic and the error of encode+decode stays within half a
// quantisation step of the segment, for every 16-bit sample.
func TestG711QuantisationError(t *testing.T) {
	for _, law := range []struct {
		name   string
		encode func(int16) byte
		decode func(byte) int16
	}{{"ulaw", linearToUlaw, ulawToLinear}, {"alaw", linearToAlaw, alawToLinear}} {
		prev := law.decode(law.encode(math.MinInt16))
		for s := math.MinInt16; s <= math.MaxInt16; s++ {
			got := law.decode(law.encode(int16(s)))
			if got < prev {
				t.Fatalf("%s not monotonic at %d: %d after %d", law.name, s, got, prev)
			}
			prev = got
			a := abs(int32(s))
			// The step of a segment doubles with each segment; at the top
			// the codes clip (32124 for µ-law, 32256 for A-law).
			step := max(int32(16), int32(1)<<(max(0, bitsLen(a)-4)))
			if err := abs(int32(got) - int32(s)); err > step && a < 32000 {
				t.Fatalf("%s(%d) decodes to %d: error %d above step %d", law.name, s, got, err, step)
			}
		}
	}
}

func abs(v int32) int32 {
	if v < 0 {
		return -v
	}
	return v
}

func bitsLen(v int32) int {
	n := 0
	for ; v > 0; v >>= 1 {
		n++
	}
	return n
}

// A full-scale-ish 1 kHz sine through each law keeps ~37 dB SNR: the
// figure G.711 is known for (notes/media-measurements.md §2).
func TestG711SineSNR(t *testing.T) {
	pcm := make([]int16, 8000)
	for i := range pcm {
		pcm[i] = int16(16000 * math.Sin(2*math.Pi*1000*float64(i)/8000+0.3))
	}
	coded := make([]byte, len(pcm))
	back := make([]int16, len(pcm))
	for _, law := range []struct {
		name   string
		encode func([]byte, []int16) int
		decode func([]int16, []byte) int
	}{{"ulaw", EncodeUlaw, DecodeUlaw}, {"alaw", EncodeAlaw, DecodeAlaw}} {
		if n := law.encode(coded, pcm); n != len(pcm) {
			t.Fatalf("%s encoded %d samples", law.name, n)
		}
		if n := law.decode(back, coded); n != len(pcm) {
			t.Fatalf("%s decoded %d samples", law.name, n)
		}
		var sig, noise float64
		for i := range pcm {
			sig += float64(pcm[i]) * float64(pcm[i])
			d := float64(pcm[i]) - float64(back[i])
			noise += d * d
		}
		snr := 10 * math.Log10(sig/noise)
		if snr < 35 || snr > 45 {
			t.Errorf("%s SNR %.1f dB, want about 37-39", law.name, snr)
		}
	}
}

func TestG711ShortBuffers(t *testing.T) {
	if n := EncodeUlaw(make([]byte, 3), make([]int16, 10)); n != 3 {
		t.Errorf("EncodeUlaw into 3 bytes wrote %d", n)
	}
	if n := DecodeAlaw(make([]int16, 10), make([]byte, 4)); n != 4 {
		t.Errorf("DecodeAlaw of 4 bytes wrote %d", n)
	}
}

func BenchmarkEncodeUlaw160(b *testing.B) {
	pcm := make([]int16, 160)
	for i := range pcm {
		pcm[i] = int16(i * 200)
	}
	dst := make([]byte, 160)
	b.ReportAllocs()
	for b.Loop() {
		EncodeUlaw(dst, pcm)
	}
}

func BenchmarkDecodeUlaw160(b *testing.B) {
	src := make([]byte, 160)
	for i := range src {
		src[i] = byte(i)
	}
	dst := make([]int16, 160)
	b.ReportAllocs()
	for b.Loop() {
		DecodeUlaw(dst, src)
	}
}
