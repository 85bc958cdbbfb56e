package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
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
	raw.Send(gw.udp(), rawOfferInvite(raw.Addr(), gw.udp(), "noack"))
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

// The callee's ACK got lost: it retransmits its 200, and callpath must send
// the ACK again (RFC 3261 §13.2.2.4), from its INVITE client transaction
// which stays alive for Timer M to catch exactly this.
func TestRetransmitted2xxGetsACKAgain(t *testing.T) {
	callee := siptest.NewRawUDP(t)
	gw := startGateway(t, callee.Addr(), `sip: {timers: {linger: 600ms}}`)
	inv, from, ok := answeredByRawCallee(t, gw, callee, "callee1")
	first := callee.Expect("ACK ", 3*time.Second)
	callee.Send(from, ok) // as if the ACK had been lost
	again := callee.Expect("ACK ", 3*time.Second)
	if siptest.Header(first, "CSeq") != siptest.Header(again, "CSeq") || siptest.Header(again, "Call-ID") != siptest.Header(inv, "Call-ID") {
		t.Fatalf("re-sent ACK differs:\n%s\n---\n%s", first, again)
	}
	// Timer M (64*T1) outlasts the transaction's linger: a 2xx that comes
	// after the INVITE transaction is forgotten still gets its ACK.
	eventually(t, 5*time.Second, "INVITE transaction forgotten", func() bool {
		_, client := gw.app.SIPTransactions()
		return client == 0
	})
	callee.Send(from, ok)
	late := callee.Expect("ACK ", 3*time.Second)
	if siptest.Header(late, "CSeq") != siptest.Header(first, "CSeq") {
		t.Fatalf("late ACK differs:\n%s\n---\n%s", first, late)
	}
}

// A second 2xx with another To tag is a fork downstream answering too
// (RFC 3261 §13.2.2.4): callpath confirms that dialog with an ACK and ends
// it with a BYE, and the call goes on on the first.
func TestSecondForkAnswerIsAckedAndHungUp(t *testing.T) {
	callee := siptest.NewRawUDP(t)
	gw := startGateway(t, callee.Addr(), "")
	inv, from, _ := answeredByRawCallee(t, gw, callee, "fork1")
	callee.Expect("ACK ", 3*time.Second)
	callee.Send(from, siptest.ResponseTo(inv, 200, "OK", "fork2",
		[]string{"Contact: <sip:" + callee.Addr() + ">", "Content-Type: application/sdp"}, sdpBody))
	ack := callee.Expect("ACK ", 3*time.Second)
	bye := callee.Expect("BYE ", 3*time.Second)
	for name, msg := range map[string]string{"ACK": ack, "BYE": bye} {
		if !strings.Contains(siptest.Header(msg, "To"), "tag=fork2") {
			t.Fatalf("%s is not for the second fork: To %s", name, siptest.Header(msg, "To"))
		}
	}
	if gw.app.ActiveCalls() != 1 {
		t.Fatalf("%d active calls, want the first fork's call to go on", gw.app.ActiveCalls())
	}
}

// answeredByRawCallee places a call from a sipgo phone through gw to a raw
// UDP callee, which answers 200 with toTag; the caller ACKs. It returns the
// INVITE the callee got, where it came from, and the 200 the callee sent.
func answeredByRawCallee(t *testing.T, gw *gateway, callee *siptest.RawUDP, toTag string) (inv, from, ok string) {
	t.Helper()
	caller := siptest.NewPhone(t, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, err := caller.Dial(ctx, caller.Invite(gw.udp(), "+4790000002", sdpFor(caller, 1, "sendrecv")))
	if err != nil {
		t.Fatal(err)
	}
	inv, from = callee.ExpectFrom("INVITE ", 3*time.Second)
	ok = siptest.ResponseTo(inv, 200, "OK", toTag,
		[]string{"Contact: <sip:" + callee.Addr() + ">", "Content-Type: application/sdp"}, sdpBody)
	callee.Send(from, ok)
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	return inv, from, ok
}
