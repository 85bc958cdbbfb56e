package rtpwire

import "testing"

func TestSequenceMapperCarriesGapsAndReordering(t *testing.T) {
	m := NewSequenceMapper(1000, 50000, 1, 1, 160)
	type step struct {
		ssrc    uint32
		seq     uint16
		ts      uint32
		wantSeq uint16
		wantTS  uint32
	}
	for i, s := range []step{
		{7, 65534, 4000, 1000, 50000},      // first packet: the output's start
		{7, 65535, 4160, 1001, 50160},      // next
		{7, 1, 4480, 1003, 50480},          // wrap, one lost: the gap shows
		{7, 0, 4320, 1002, 50320},          // the lost one arrives late
		{7, 2, 4640, 1004, 50640},          // carries on
		{7, 3, 20640, 1005, 66640},         // silence (DTX): timestamp jump kept
		{9, 500, 1, 1006, 66800},           // new SSRC: continue one frame on
		{9, 501, 161, 1007, 66960},         // and follow it
		{9, 501 + 30000, 200, 1008, 67120}, // wild jump: restart
	} {
		seq, ts := m.Map(s.ssrc, s.seq, s.ts)
		if seq != s.wantSeq || ts != s.wantTS {
			t.Fatalf("step %d: mapped to %d/%d, want %d/%d", i, seq, ts, s.wantSeq, s.wantTS)
		}
	}
}

// 48 kHz input onto an 8 kHz output: timestamp steps divide by six, and
// packets of our own take the next numbers.
func TestSequenceMapperScalesClock(t *testing.T) {
	m := NewSequenceMapper(0, 0, 1, 6, 160)
	m.Map(1, 10, 96000)
	seq, ts := m.Map(1, 11, 96960)
	if seq != 1 || ts != 160 {
		t.Fatalf("got %d/%d, want 1/160", seq, ts)
	}
	if seq, ts = m.Next(80); seq != 2 || ts != 240 {
		t.Fatalf("Next: %d/%d, want 2/240", seq, ts)
	}
	if seq, ts = m.Map(1, 12, 97920); seq != 3 || ts != 400 {
		t.Fatalf("after Next: %d/%d, want 3/400", seq, ts)
	}
}
