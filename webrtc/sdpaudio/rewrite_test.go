package sdpaudio

import (
	"strings"
	"testing"
)

func TestWithDirection(t *testing.T) {
	// Replaced in the audio stream only (the video line's stays).
	offer := strings.Replace(carrierOffer, "m=video 5002 RTP/AVP 96\r\n", "m=video 5002 RTP/AVP 96\r\na=sendonly\r\n", 1)
	got := WithDirection(offer, Inactive)
	d, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if d.Audio.Direction != Inactive || !strings.Contains(got, "m=video 5002 RTP/AVP 96\r\na=sendonly\r\n") || strings.Count(got, "a=inactive") != 1 {
		t.Errorf("replaced:\n%s", got)
	}
	// Added when the stream has none.
	plain := strings.Replace(carrierOffer, "a=sendonly\r\n", "", 1)
	got = WithDirection(plain, RecvOnly)
	if d, err := Parse(got); err != nil || d.Audio.Direction != RecvOnly {
		t.Errorf("added: %v\n%s", err, got)
	}
	if len(got) != len(plain)+len("a=recvonly\r\n") {
		t.Errorf("other lines changed:\n%s", got)
	}
}

func FuzzWithDirection(f *testing.F) {
	f.Add(carrierOffer, uint8(1))
	f.Add(chromeOffer, uint8(3))
	f.Fuzz(func(t *testing.T, raw string, dir uint8) {
		d := Direction(dir % 4)
		before, err := Parse(raw)
		if err != nil {
			return
		}
		if !wellFormedLines(raw) {
			_ = WithDirection(raw, d) // only must not crash
			return
		}
		after, err := Parse(WithDirection(raw, d))
		if err != nil {
			t.Fatalf("rewritten SDP does not parse: %v", err)
		}
		if after.Audio.Direction != d || after.Audio.Index != before.Audio.Index || len(after.Audio.Formats) != len(before.Audio.Formats) {
			t.Fatalf("direction %v, stream %d/%d, formats %d/%d", after.Audio.Direction, after.Audio.Index, before.Audio.Index, len(after.Audio.Formats), len(before.Audio.Formats))
		}
	})
}

// wellFormedLines tells whether raw is one "<letter>=" field per line,
// ended by CRLF or LF. pion's lexer also reads fields run together on one
// line or split by a lone CR, and takes some broken last lines only
// without their line end: WithDirection, working line by line, promises
// nothing for such text but not to crash.
func wellFormedLines(raw string) bool {
	if !strings.HasSuffix(raw, "\n") || strings.Count(raw, "\r") != strings.Count(raw, "\r\n") {
		return false
	}
	for _, line := range strings.Split(strings.TrimRight(raw, "\r\n"), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if len(line) < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z' {
			return false
		}
		for i := 2; i+2 < len(line); i++ {
			if line[i] == ' ' && line[i+1] >= 'a' && line[i+1] <= 'z' && line[i+2] == '=' {
				return false
			}
		}
	}
	return true
}
