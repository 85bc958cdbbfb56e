// Package mediatest has the test parts of the media plane's tests: a tone
// generator, a Goertzel detector, a plain RTP phone and a pion "browser",
// each sending a tone or RFC 4733 digits and checking what it hears.
package mediatest

import "math"

// Tone generates a sine at Freq Hz, sample after sample, continuing its
// phase across calls.
type Tone struct {
	Freq, Rate float64
	Amplitude  float64
	phase      float64
}

// Fill writes the next len(pcm) samples.
func (t *Tone) Fill(pcm []int16) {
	step := 2 * math.Pi * t.Freq / t.Rate
	for i := range pcm {
		pcm[i] = int16(t.Amplitude * math.Sin(t.phase))
		t.phase += step
		if t.phase > 2*math.Pi {
			t.phase -= 2 * math.Pi
		}
	}
}

// PowerShare is the share of x's power at freq (Goertzel's algorithm):
// about 1 for a pure tone at freq, about 0 for other tones and silence.
func PowerShare(x []int16, freq, rate float64) float64 {
	if len(x) == 0 {
		return 0
	}
	coeff := 2 * math.Cos(2*math.Pi*freq/rate)
	var s1, s2, total float64
	for _, v := range x {
		s := float64(v) + coeff*s1 - s2
		s2, s1 = s1, s
		total += float64(v) * float64(v)
	}
	if total == 0 {
		return 0
	}
	p := s1*s1 + s2*s2 - coeff*s1*s2
	return 2 * p / (float64(len(x)) * total)
}

// RMS is the root mean square level of x.
func RMS(x []int16) float64 {
	if len(x) == 0 {
		return 0
	}
	var sum float64
	for _, v := range x {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(len(x)))
}
