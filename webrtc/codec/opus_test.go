//go:build opus

package codec

import (
	"math"
	"testing"
)

// A 1 kHz tone at 8 kHz through Opus and back keeps its frequency: the
// power at 1 kHz dominates the decoded signal once the encoder has settled.
func TestOpusRoundTripKeepsTone(t *testing.T) {
	enc, err := NewOpusEncoder(8000)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewOpusDecoder(8000)
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]int16, 160)
	packet := make([]byte, 400)
	out := make([]int16, 960)
	var decoded []int16
	for f := range 50 {
		for i := range frame {
			n := f*160 + i
			frame[i] = int16(10000 * math.Sin(2*math.Pi*1000*float64(n)/8000))
		}
		n, err := enc.Encode(frame, packet)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 || n > 100 {
			t.Fatalf("frame %d: %d-byte packet at 16 kbit/s", f, n)
		}
		got, err := dec.Decode(packet[:n], out)
		if err != nil {
			t.Fatal(err)
		}
		if got != 160 {
			t.Fatalf("decoded %d samples, want 160", got)
		}
		decoded = append(decoded, out[:got]...)
	}
	tail := decoded[len(decoded)-1600:]
	if share := powerShare(tail, 1000, 8000); share < 0.9 {
		t.Errorf("1 kHz holds %.2f of the decoded power, want > 0.9", share)
	}
	if err := dec.Conceal(nil, out[:160]); err != nil {
		t.Errorf("concealment: %v", err)
	}
	if err := dec.Conceal(packet[:10], out[:160]); err != nil {
		t.Errorf("FEC concealment: %v", err)
	}
}

// powerShare is the share of the signal's power at freq (Goertzel).
func powerShare(x []int16, freq, rate float64) float64 {
	coeff := 2 * math.Cos(2*math.Pi*freq/rate)
	var s1, s2, total float64
	for _, v := range x {
		s := float64(v) + coeff*s1 - s2
		s2, s1 = s1, s
		total += float64(v) * float64(v)
	}
	p := s1*s1 + s2*s2 - coeff*s1*s2
	return 2 * p / (float64(len(x)) * total)
}

func BenchmarkOpusTranscodeFrame(b *testing.B) {
	enc, _ := NewOpusEncoder(8000)
	dec, _ := NewOpusDecoder(8000)
	frame := make([]int16, 160)
	for i := range frame {
		frame[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/8000))
	}
	packet := make([]byte, 400)
	out := make([]int16, 960)
	b.ReportAllocs()
	for b.Loop() {
		n, err := enc.Encode(frame, packet)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := dec.Decode(packet[:n], out); err != nil {
			b.Fatal(err)
		}
	}
}
