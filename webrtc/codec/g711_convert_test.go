package codec

import (
	"math"
	"testing"
)

// Every code word of each law converts to the code word of the other law
// that encodes its value, and the value survives within the coarser law's
// quantisation step: half a step of A-law at the value (µ-law's steps are
// no coarser except at the very top, where A-law clips at 32,256 and
// µ-law at 32,124).
func TestLawConversionKeepsTheValue(t *testing.T) {
	for i := range 256 {
		u := []byte{byte(i)}
		UlawToAlaw(u)
		if want := linearToAlaw(ulawToLinear(byte(i))); u[0] != want {
			t.Fatalf("µ-law %#02x → A-law %#02x, want %#02x", i, u[0], want)
		}
		a := []byte{byte(i)}
		AlawToUlaw(a)
		if want := linearToUlaw(alawToLinear(byte(i))); a[0] != want {
			t.Fatalf("A-law %#02x → µ-law %#02x, want %#02x", i, a[0], want)
		}
		for _, c := range []struct {
			name     string
			from, to int16
		}{
			{"µ→A", ulawToLinear(byte(i)), alawToLinear(u[0])},
			{"A→µ", alawToLinear(byte(i)), ulawToLinear(a[0])},
		} {
			v := math.Abs(float64(c.from))
			step := 16.0 // A-law segments 0 and 1, µ-law's finest are 2..8
			if v >= 512 {
				step = math.Exp2(math.Floor(math.Log2(v))) / 16
			}
			if d := math.Abs(float64(c.from) - float64(c.to)); d > step && math.Abs(float64(c.to)) < 32000 {
				t.Errorf("%s: code %#02x is %d, converted %d (off by %.0f, step %.0f)", c.name, i, c.from, c.to, d, step)
			}
			if (c.from < 0) != (c.to < 0) && c.from != 0 && c.to != 0 {
				t.Errorf("%s: code %#02x changes sign: %d → %d", c.name, i, c.from, c.to)
			}
		}
	}
}

// A 1 kHz sine in µ-law converted to A-law decodes to the same sine: the
// signal-to-noise ratio stays that of G.711 (above 30 dB).
func TestLawConversionSineSNR(t *testing.T) {
	pcm := make([]int16, 800)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*1000*float64(i)/8000))
	}
	wire := make([]byte, len(pcm))
	EncodeUlaw(wire, pcm)
	UlawToAlaw(wire)
	out := make([]int16, len(pcm))
	DecodeAlaw(out, wire)
	var signal, noise float64
	for i := range pcm {
		signal += float64(pcm[i]) * float64(pcm[i])
		d := float64(pcm[i]) - float64(out[i])
		noise += d * d
	}
	if snr := 10 * math.Log10(signal/noise); snr < 30 {
		t.Fatalf("SNR after µ-law → A-law %.1f dB", snr)
	}
}

func BenchmarkUlawToAlaw160(b *testing.B) {
	frame := make([]byte, 160)
	for i := range frame {
		frame[i] = byte(i)
	}
	b.ReportAllocs()
	b.SetBytes(160)
	for b.Loop() {
		UlawToAlaw(frame)
	}
}
