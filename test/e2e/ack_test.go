package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"callpath/cdr"
	"callpath/internal/siptest"
)

// A caller that never ACKs the 2xx: callpath retransmits its 2xx with
// doubling intervals (RFC 3261 §13.3.1.4), and after 64*T1 confirms the
// callee's dialog with an ACK and hangs both sides up.
func TestUnacknowledged2xxIsRetransmittedThenHungUp(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "")
	raw := siptest.NewRawUDP(t)
	invite := strings.Replace(rawInvite(raw.Addr(), gw.udp(), "noack", 70), "Content-Length: 0\n",
		"Content-Type: application/sdp\nContent-Length: "+strconv.Itoa(len(sdpBody))+"\n", 1) + sdpBody
	raw.Send(gw.udp(), invite)
	in := callee.NextCall(3 * time.Second)
	if err := in.Respond(200, "OK", sdpFor(callee, 1, "sendrecv")); err != nil {
		t.Fatal(err)
	}
	first := raw.Expect("SIP/2.0 200", 3*time.Second)
	again := raw.Expect("SIP/2.0 200", 2*time.Second)
	if siptest.Header(first, "CSeq") != siptest.Header(again, "CSeq") || toTag(first) != toTag(again) {
		t.Fatalf("retransmission differs:\n%s\n---\n%s", first, again)
	}
	// The callee gets its ACK and then a BYE. (Its own wait for the ACK
	// runs out at the same 64*T1, so it may already have given up.)
	callee.WaitRequest(10*time.Second, siptest.Method(sip.ACK))
	callee.WaitRequest(10*time.Second, siptest.Method(sip.BYE))
	raw.Expect("BYE ", 10*time.Second)
	r := gw.cdrs(1)[0]
	if r.HangupBy != cdr.HangupGateway || r.Reason != "no ACK" || r.FinalCode != 408 {
		t.Fatalf("CDR %+v", r)
	}
}

const sdpBody = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
