package mediatest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Ear collects what a test phone hears: decoded audio at 8 kHz (the last
// second of it) and the RFC 4733 digits received.
type Ear struct {
	mu      sync.Mutex
	pcm     []int16
	digits  strings.Builder
	packets int
}

// earWindow is how much audio the tone checks look at: 200 ms.
const earWindow = 1600

// Hear adds decoded samples.
func (e *Ear) Hear(pcm []int16) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.packets++
	e.pcm = append(e.pcm, pcm...)
	if len(e.pcm) > 8000 {
		e.pcm = append(e.pcm[:0], e.pcm[len(e.pcm)-8000:]...)
	}
}

// Digit adds a received digit.
func (e *Ear) Digit(d rune) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.digits.WriteRune(d)
}

// Digits returns the digits received so far.
func (e *Ear) Digits() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.digits.String()
}

// Packets is the number of audio packets heard.
func (e *Ear) Packets() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.packets
}

// Hears tells whether the last 200 ms hold a tone at freq: most of the
// power at that frequency, at a level well above silence.
func (e *Ear) Hears(freq float64) (bool, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.pcm) < earWindow {
		return false, fmt.Sprintf("%d samples heard", len(e.pcm))
	}
	w := e.pcm[len(e.pcm)-earWindow:]
	share, rms := PowerShare(w, freq, 8000), RMS(w)
	return share > 0.8 && rms > 1000, fmt.Sprintf("%.0f Hz holds %.3f of the power, level %.0f rms", freq, share, rms)
}

// Silent tells whether the last 200 ms are (near) silence.
func (e *Ear) Silent() (bool, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.pcm) < earWindow {
		return false, fmt.Sprintf("%d samples heard", len(e.pcm))
	}
	rms := RMS(e.pcm[len(e.pcm)-earWindow:])
	return rms < 200, fmt.Sprintf("level %.0f rms", rms)
}

// WaitTone waits, up to within, until the ear hears a tone at freq.
func (e *Ear) WaitTone(t testing.TB, name string, freq float64, within time.Duration) {
	t.Helper()
	Eventually(t, within, func() (bool, string) { return e.Hears(freq) }, "%s hears %.0f Hz", name, freq)
}

// WaitDigits waits, up to within, until the ear has received want.
func (e *Ear) WaitDigits(t testing.TB, name, want string, within time.Duration) {
	t.Helper()
	Eventually(t, within, func() (bool, string) {
		got := e.Digits()
		return got == want, fmt.Sprintf("digits %q", got)
	}, "%s receives digits %q", name, want)
}

// Eventually polls cond every 10 ms until it holds or within passes, then
// fails the test with cond's last explanation.
func Eventually(t testing.TB, within time.Duration, cond func() (bool, string), format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, not: %s (%s)", within, fmt.Sprintf(format, args...), why)
		}
		<-ticker.C
	}
}
