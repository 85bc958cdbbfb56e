package webrtc

import (
	"errors"
	"net"
	"net/netip"
	"testing"
)

// Pairs are an even RTP port and the next one for RTCP, handed out round
// robin over the range; a port held by someone else is skipped; a full
// range fails with ErrNoPorts; released pairs come back.
func TestPortAllocator(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	// Find a free stretch of 8 ports to make the range of.
	base := 0
	for candidate := 41000; candidate < 60000 && base == 0; candidate += 64 {
		free := true
		for p := candidate; p < candidate+8; p++ {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, uint16(p))))
			if err != nil {
				free = false
				break
			}
			_ = c.Close()
		}
		if free {
			base = candidate
		}
	}
	if base == 0 {
		t.Fatal("no 8 free UDP ports in a row between 41000 and 60000 on loopback")
	}
	// Someone else holds base+2.
	squatter, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, uint16(base+2))))
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()

	a := newPortAllocator(lo, base, base+7)
	var got []portPair
	for range 3 {
		p, err := a.allocate()
		if err != nil {
			t.Fatal(err)
		}
		if p.port%2 != 0 || p.rtcp.LocalAddr().(*net.UDPAddr).Port != p.port+1 {
			t.Errorf("pair %d/%d", p.port, p.rtcp.LocalAddr().(*net.UDPAddr).Port)
		}
		got = append(got, p)
	}
	if got[0].port != base || got[1].port != base+4 || got[2].port != base+6 {
		t.Errorf("ports %d, %d, %d from %d (base+2 held)", got[0].port, got[1].port, got[2].port, base)
	}
	if _, err := a.allocate(); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("a full range: %v", err)
	}
	a.release(got[1])
	p, err := a.allocate()
	if err != nil || p.port != base+4 {
		t.Fatalf("after release: %d, %v", p.port, err)
	}
	a.release(p)
	a.release(got[0])
	a.release(got[2])
}
