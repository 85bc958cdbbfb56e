package rtpwire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pion/rtp"
)

// Packets marshalled by pion/rtp, with CSRCs, extensions and padding, parse
// to the same fields and payload.
func TestParseAgreesWithPion(t *testing.T) {
	for _, p := range []rtp.Packet{
		{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 65535, Timestamp: 1<<32 - 1, SSRC: 0xdeadbeef}, Payload: bytes.Repeat([]byte{0xff}, 160)},
		{Header: rtp.Header{Version: 2, Marker: true, PayloadType: 111, SequenceNumber: 7, Timestamp: 960, SSRC: 1, CSRC: []uint32{5, 6}}, Payload: []byte{1, 2, 3}},
		{Header: rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: 9, Timestamp: 3, SSRC: 2}, Payload: []byte{9, 8, 7, 6}},
		{Header: rtp.Header{Version: 2, Padding: true, PayloadType: 8, SequenceNumber: 1, SSRC: 3, PaddingSize: 4}, Payload: []byte{0xd5, 0xd5}, PaddingSize: 4},
	} {
		if p.PayloadType == 101 {
			withExtension(t, &p)
		}
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		h, err := Parse(b)
		if err != nil {
			t.Fatalf("%v: %v", p.Header, err)
		}
		if h.Marker != p.Marker || h.PayloadType != p.PayloadType || h.SequenceNumber != p.SequenceNumber ||
			h.Timestamp != p.Timestamp || h.SSRC != p.SSRC {
			t.Errorf("parsed %+v from %v", h, p.Header)
		}
		if !bytes.Equal(b[h.PayloadStart:h.PayloadEnd], p.Payload) {
			t.Errorf("payload %x, want %x", b[h.PayloadStart:h.PayloadEnd], p.Payload)
		}
	}
}

func TestParseRejects(t *testing.T) {
	good := make([]byte, 20)
	good[0] = 0x80
	for name, c := range map[string]struct {
		b    []byte
		want error
	}{
		"empty":              {nil, ErrShort},
		"11 bytes":           {good[:11], ErrShort},
		"version 1":          {append([]byte{0x40}, good[1:]...), ErrVersion},
		"csrcs beyond end":   {append([]byte{0x8f}, good[1:]...), ErrShort},
		"extension too long": {append([]byte{0x90}, append(append([]byte(nil), good[1:12]...), 0xbe, 0xde, 0, 9)...), ErrShort},
		"zero padding":       {append(append([]byte{0xa0}, good[1:19]...), 0), ErrPadding},
		"padding too long":   {append(append([]byte{0xa0}, good[1:19]...), 9), ErrPadding},
	} {
		if _, err := Parse(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// Rewrite leaves a packet pion reads as the plain-header packet asked for,
// with the original payload and without CSRCs, extension or padding.
func TestRewriteStripsAndSetsFields(t *testing.T) {
	in := rtp.Packet{Header: rtp.Header{Version: 2, Padding: true, PaddingSize: 3, PayloadType: 111, SequenceNumber: 1, Timestamp: 2, SSRC: 3,
		CSRC: []uint32{4}}, Payload: []byte("payload"), PaddingSize: 3}
	withExtension(t, &in)
	b, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	out := Rewrite(b, h, 0, true, 500, 600, 700)
	var got rtp.Packet
	if err := got.Unmarshal(out); err != nil {
		t.Fatal(err)
	}
	if got.PayloadType != 0 || !got.Marker || got.SequenceNumber != 500 || got.Timestamp != 600 || got.SSRC != 700 ||
		len(got.CSRC) != 0 || got.Extension || got.Padding || string(got.Payload) != "payload" {
		t.Errorf("rewritten packet %v payload %q", got.Header, got.Payload)
	}
}

func TestIsRTCP(t *testing.T) {
	if !IsRTCP([]byte{0x81, 200}) || !IsRTCP([]byte{0x80, 201}) {
		t.Error("SR/RR not taken for RTCP")
	}
	if IsRTCP([]byte{0x80, 0}) || IsRTCP([]byte{0x80, 0x80 | 111}) || IsRTCP([]byte{0x80}) {
		t.Error("RTP taken for RTCP")
	}
}

// The relay's per-packet work allocates nothing.
func TestRewriteAllocatesNothing(t *testing.T) {
	b := make([]byte, 172)
	PutHeader(b, 0, false, 1, 2, 3)
	m := NewSequenceMapper(100, 1000, 1, 1, 160)
	allocs := testing.AllocsPerRun(1000, func() {
		h, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		seq, ts := m.Map(h.SSRC, h.SequenceNumber+1, h.Timestamp+160)
		b = Rewrite(b[:172], h, 0, false, seq, ts, 42)
		PutHeader(b, 0, false, h.SequenceNumber+1, h.Timestamp+160, 3)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet", allocs)
	}
}

func BenchmarkParseRewrite(b *testing.B) {
	pkt := make([]byte, 172)
	PutHeader(pkt, 0, false, 1, 2, 3)
	m := NewSequenceMapper(100, 1000, 1, 1, 160)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h, err := Parse(pkt)
		if err != nil {
			b.Fatal(err)
		}
		seq, ts := m.Map(h.SSRC, uint16(i), uint32(i)*160)
		Rewrite(pkt, h, 8, false, seq, ts, 42)
	}
}

// Any input either fails to parse or yields in-bounds offsets that
// Rewrite can use, and pion agrees the result is an RTP packet.
func FuzzParseRewrite(f *testing.F) {
	for _, p := range []rtp.Packet{
		{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 1}, Payload: make([]byte, 160)},
		{Header: rtp.Header{Version: 2, CSRC: []uint32{1, 2}}, Payload: []byte{1}},
	} {
		withExtension(f, &p)
		b, _ := p.Marshal()
		f.Add(b)
	}
	f.Add([]byte{0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		if err != nil {
			return
		}
		if h.PayloadStart < FixedHeaderLen || h.PayloadStart > h.PayloadEnd || h.PayloadEnd > len(b) {
			t.Fatalf("offsets %d..%d of %d bytes", h.PayloadStart, h.PayloadEnd, len(b))
		}
		payload := append([]byte(nil), b[h.PayloadStart:h.PayloadEnd]...)
		out := Rewrite(b, h, 8, true, 1, 2, 3)
		var p rtp.Packet
		if err := p.Unmarshal(out); err != nil {
			t.Fatalf("rewritten packet does not parse: %v", err)
		}
		if !bytes.Equal(p.Payload, payload) {
			t.Fatalf("payload changed")
		}
	})
}

// withExtension adds a one-byte header extension (RFC 8285) to p.
func withExtension(tb testing.TB, p *rtp.Packet) {
	tb.Helper()
	if err := p.SetExtension(1, []byte{0x80}); err != nil {
		tb.Fatal(err)
	}
}
