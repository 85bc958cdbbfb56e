//go:build !race

package webrtc

// Under the race detector sync.Pool drops a share of what is put back, and
// pion's SRTP decryption then allocates: this test runs only without it
// (CI runs the allocation tests in a build without -race too).

import (
	"testing"

	"github.com/pion/srtp/v3"
)

// With DTLS-SRTP on the SIP leg the per-packet work (SRTP decryption in
// place, encryption into the leg's buffer) still allocates nothing.
func TestSecureRelayAllocatesNothingPerPacket(t *testing.T) {
	r := newRelayRig(t)
	key, salt := make([]byte, 16), make([]byte, 14)
	newCtx := func() *srtp.Context {
		c, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAes128CmHmacSha1_80)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	sec := newSIPDTLS(r.s.sip, true, "")
	sec.encRTP, sec.encRTCP, sec.decRTP, sec.decRTCP = newCtx(), newCtx(), newCtx(), newCtx()
	sec.ready.Store(true)
	r.s.sip.secure.Store(sec)

	// The phone's packets, encrypted beforehand: SRTP refuses replays, so
	// every run needs a new one.
	const runs = 2000
	phone := newCtx()
	var encrypted [][]byte
	for range runs + 1 {
		next := nextPacket(r.phonePacket, make([]byte, 1500))
		out, err := phone.EncryptRTP(nil, next, nil)
		if err != nil {
			t.Fatal(err)
		}
		encrypted = append(encrypted, out)
	}
	buf := make([]byte, 1500)
	i := 0
	if allocs := testing.AllocsPerRun(runs, func() {
		r.fromSIP.packet(buf[:copy(buf, encrypted[i])], r.phoneAddr)
		i++
	}); allocs != 0 {
		t.Errorf("SRTP → browser: %v allocations per packet", allocs)
	}
	if allocs := testing.AllocsPerRun(runs, func() { r.toSIP.packet(nextPacket(r.browserPacket, buf)) }); allocs != 0 {
		t.Errorf("browser → SRTP: %v allocations per packet", allocs)
	}
	if got := r.s.sip.rx.Load(); got < runs {
		t.Errorf("only %d SRTP packets accepted: the rig measured drops", got)
	}
}
