package dtmf

import (
	"errors"
	"testing"
)

func TestParsePutRoundTrip(t *testing.T) {
	for _, e := range []Event{{Code: 0}, {Code: 11, End: true, Volume: 10, Duration: 1600}, {Code: 15, Volume: 63, Duration: 0xffff}} {
		var b [EventLen]byte
		e.Put(b[:])
		got, err := Parse(b[:])
		if err != nil || got != e {
			t.Errorf("%+v -> %x -> %+v, %v", e, b, got, err)
		}
	}
	// The reserved bit is ignored on input (§2.3).
	if e, err := Parse([]byte{5, 0xc0 | 7, 0, 160}); err != nil || !e.End || e.Volume != 7 || e.Duration != 160 {
		t.Errorf("reserved bit: %+v %v", e, err)
	}
}

func TestParseRejects(t *testing.T) {
	if _, err := Parse([]byte{1, 2, 3}); !errors.Is(err, ErrShort) {
		t.Errorf("3 bytes: %v", err)
	}
	if _, err := Parse([]byte{16, 0, 0, 1}); !errors.Is(err, ErrUnknownEvent) {
		t.Errorf("flash: %v", err)
	}
}

func TestDigitsAndCodes(t *testing.T) {
	for code := range uint8(16) {
		d, ok := Digit(code)
		if !ok {
			t.Fatalf("code %d has no digit", code)
		}
		if back, ok := Code(d); !ok || back != code {
			t.Errorf("%c -> %d", d, back)
		}
	}
	if _, ok := Digit(16); ok {
		t.Error("16 taken for a digit")
	}
	if _, ok := Code('x'); ok {
		t.Error("'x' taken for a digit")
	}
}

func TestRescale(t *testing.T) {
	if got := Rescale(960, 48000, 8000); got != 160 {
		t.Errorf("960 at 48 kHz = %d at 8 kHz", got)
	}
	if got := Rescale(160, 8000, 48000); got != 960 {
		t.Errorf("160 at 8 kHz = %d at 48 kHz", got)
	}
	if got := Rescale(20000, 8000, 48000); got != 0xffff {
		t.Errorf("saturation: %d", got)
	}
}

// A generated digit is detected once, however many end packets arrive, and
// a digit whose end packets were all lost is reported when the next starts.
func TestDetectorReportsEachDigitOnce(t *testing.T) {
	var d Detector
	var got []rune
	feed := func(ts uint32, events []Event) {
		for _, e := range events {
			if done, ok := d.Observe(ts, e); ok {
				r, _ := Digit(done.Code)
				got = append(got, r)
				if done.Duration == 0 {
					t.Errorf("digit %c reported with no duration", r)
				}
			}
		}
	}
	feed(1000, Packets(1, 800, 160, 10))
	feed(3000, Packets(2, 800, 160, 10)[:4]) // ends lost
	feed(5000, Packets(11, 800, 160, 10))
	feed(5000, Packets(11, 800, 160, 10)[5:]) // a repeated end packet
	if string(got) != "12#" {
		t.Fatalf("detected %q, want \"12#\"", string(got))
	}
}

func TestPacketsSequence(t *testing.T) {
	p := Packets(5, 800, 160, 10)
	if len(p) != 4+3 {
		t.Fatalf("%d packets, want 7", len(p))
	}
	if p[0].Duration != 160 || p[3].Duration != 640 || p[3].End {
		t.Errorf("updates %+v", p[:4])
	}
	for _, e := range p[4:] {
		if !e.End || e.Duration != 800 {
			t.Errorf("end packet %+v", e)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte{1, 0x8a, 3, 0x20})
	f.Add([]byte{255, 255, 255, 255, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			return
		}
		var out [EventLen]byte
		e.Put(out[:])
		again, err := Parse(out[:])
		if err != nil || again != e {
			t.Fatalf("%x -> %+v -> %+v %v", b, e, again, err)
		}
		var d Detector
		d.Observe(1, e)
	})
}
