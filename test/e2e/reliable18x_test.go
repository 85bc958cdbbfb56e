package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"callpath/internal/siptest"
)

// rawCaller is a caller writing its SIP by hand over UDP, for the exact
// headers of reliable provisional responses and PRACKs.
type rawCaller struct {
	t      *testing.T
	raw    *siptest.RawUDP
	gw     string
	callID string
	toTag  string
	cseq   int
}

// newRawCaller sends an INVITE with an offer and the extra header lines.
func newRawCaller(t *testing.T, gw, callID string, extra ...string) *rawCaller {
	c := &rawCaller{t: t, raw: siptest.NewRawUDP(t), gw: gw, callID: callID, cseq: 1}
	c.raw.Send(gw, rawOfferInvite(c.raw.Addr(), gw, callID, extra...))
	return c
}

// next returns the next response other than 100 Trying. It waits longer
// than the longest gap between retransmissions (32*T1).
func (c *rawCaller) next() string {
	c.t.Helper()
	for {
		msg := c.raw.Expect("SIP/2.0 ", 5*time.Second)
		if !strings.HasPrefix(msg, "SIP/2.0 100 ") {
			if tag := toTag(msg); tag != "" {
				c.toTag = tag
			}
			return msg
		}
	}
}

// send sends an in-dialog request (PRACK, ACK, BYE) with the next CSeq
// (ACK: the INVITE's).
func (c *rawCaller) send(method string, extra ...string) {
	c.t.Helper()
	cseq := 1
	if method != "ACK" {
		c.cseq++
		cseq = c.cseq
	}
	msg := method + " sip:+4790000002@" + c.gw + " SIP/2.0\n" +
		"Via: SIP/2.0/UDP " + c.raw.Addr() + ";branch=z9hG4bK" + c.callID + method + strconv.Itoa(c.cseq) + "\n" +
		"Max-Forwards: 70\n" +
		"From: <sip:+4790000001@127.0.0.1>;tag=a\n" +
		"To: <sip:+4790000002@127.0.0.1>;tag=" + c.toTag + "\n" +
		"Call-ID: " + c.callID + "\n" +
		"CSeq: " + strconv.Itoa(cseq) + " " + method + "\n"
	for _, h := range extra {
		msg += h + "\n"
	}
	c.raw.Send(c.gw, msg+"Content-Length: 0\n\n")
}

func rseqOf(t *testing.T, res string) int {
	t.Helper()
	if !strings.Contains(siptest.Header(res, "Require"), "100rel") {
		t.Fatalf("not sent reliably (Require %q):\n%s", siptest.Header(res, "Require"), res)
	}
	n, err := strconv.Atoi(siptest.Header(res, "RSeq"))
	if err != nil || n < 1 {
		t.Fatalf("RSeq %q", siptest.Header(res, "RSeq"))
	}
	return n
}

func statusOf(res string) string { return strings.SplitN(res, " ", 3)[1] }

// A caller that requires 100rel gets every provisional response reliably:
// Require: 100rel and an RSeq, retransmitted until its PRACK, one at a
// time (the 180 the callee sent meanwhile waits for the 183's PRACK and
// comes with the next RSeq); a PRACK acknowledging nothing gets 481; the
// call is answered and ends as any other.
func TestCallerRequiring100relGetsReliableProvisionals(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "")
	caller := newRawCaller(t, gw.udp(), "rel-uas-1", "Require: 100rel")
	in := callee.NextCall(3 * time.Second)
	if err := in.Respond(183, "Session Progress", sdpFor(callee, 1, "sendrecv")); err != nil {
		t.Fatal(err)
	}
	first := caller.next()
	rseq := rseqOf(t, first)
	if statusOf(first) != "183" || !strings.Contains(first, "m=audio") {
		t.Fatalf("first provisional:\n%s", first)
	}
	// The callee rings meanwhile (sent once the 183 has crossed: two
	// datagrams sent back to back may be read by two read loops in either
	// order).
	if err := in.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	// No PRACK yet: the 183 comes again (T1 is 100 ms here), and the 180
	// does not come before it is acknowledged.
	again := caller.next()
	if statusOf(again) != "183" || rseqOf(t, again) != rseq {
		t.Fatalf("want the 183 retransmitted with RSeq %d, got:\n%s", rseq, again)
	}
	caller.send("PRACK", "RAck: "+strconv.Itoa(rseq+5)+" 1 INVITE")
	for res := caller.next(); statusOf(res) != "481"; res = caller.next() {
		if statusOf(res) != "183" {
			t.Fatalf("a PRACK of no response: want 481, got:\n%s", res)
		}
	}
	caller.send("PRACK", "RAck: "+strconv.Itoa(rseq)+" 1 INVITE")
	var prackOK, ringing bool
	for !prackOK || !ringing {
		res := caller.next()
		switch {
		case statusOf(res) == "200" && strings.Contains(siptest.Header(res, "CSeq"), "PRACK"):
			prackOK = true
		case statusOf(res) == "180":
			if n := rseqOf(t, res); n != rseq+1 {
				t.Fatalf("180 with RSeq %d, want %d", n, rseq+1)
			}
			ringing = true
		case statusOf(res) == "183" && !prackOK:
			// a retransmission already on its way
		default:
			t.Fatalf("after the PRACK:\n%s", res)
		}
	}
	caller.send("PRACK", "RAck: "+strconv.Itoa(rseq+1)+" 1 INVITE")
	res := caller.next()
	for statusOf(res) == "180" && rseqOf(t, res) == rseq+1 { // retransmitted before the PRACK got there
		res = caller.next()
	}
	if statusOf(res) != "200" || !strings.Contains(siptest.Header(res, "CSeq"), "PRACK") {
		t.Fatalf("PRACK of the 180:\n%s", res)
	}
	if err := in.Respond(200, "OK", sdpFor(callee, 1, "sendrecv")); err != nil {
		t.Fatal(err)
	}
	if res := caller.next(); statusOf(res) != "200" || !strings.Contains(siptest.Header(res, "CSeq"), "INVITE") {
		t.Fatalf("want the 200 to the INVITE:\n%s", res)
	}
	caller.send("ACK")
	callee.WaitRequest(3*time.Second, siptest.Method(sip.ACK))
	caller.send("BYE")
	callee.WaitRequest(3*time.Second, siptest.Method(sip.BYE))
	eventually(t, 5*time.Second, "the call ended", func() bool { return gw.app.ActiveCalls() == 0 })
}

// A reliable provisional response the caller never PRACKs ends the call
// after 64*T1 (6.4 s here) with a 5xx (RFC 3262 §3); the callee gets
// CANCEL. (The call rings past Timer B meanwhile, which a provisional
// response stops.)
func TestUnacknowledgedReliableProvisionalRejectsTheCall(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "")
	caller := newRawCaller(t, gw.udp(), "rel-uas-2", "Require: 100rel")
	in := callee.NextCall(3 * time.Second)
	if err := in.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	rseq := rseqOf(t, caller.next())
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := caller.next()
		if statusOf(res) == "180" {
			if rseqOf(t, res) != rseq {
				t.Fatalf("a retransmission with another RSeq:\n%s", res)
			}
			if time.Now().After(deadline) {
				t.Fatal("still retransmitting after 64*T1")
			}
			continue
		}
		if statusOf(res) != "504" {
			t.Fatalf("want 504 after 64*T1 without PRACK, got:\n%s", res)
		}
		break
	}
	eventually(t, 5*time.Second, "the callee's INVITE cancelled", txEnded(in))
	if r := gw.cdrs(1)[0]; r.FinalCode != 504 || r.Reason != "no PRACK" {
		t.Errorf("CDR %+v", r)
	}
	eventually(t, 10*time.Second, "the call ended", func() bool { return gw.app.ActiveCalls() == 0 })
}

// 100rel required on an INVITE without an offer is not supported (the
// callee's SDP would be an offer in a reliable provisional, answered in a
// PRACK only the callee's side could write): 420 with Unsupported: 100rel.
func TestOfferlessInviteRequiring100relGets420(t *testing.T) {
	gw := startGateway(t, "127.0.0.1:9", "")
	raw := siptest.NewRawUDP(t)
	raw.Send(gw.udp(), strings.Replace(rawInvite(raw.Addr(), gw.udp(), "rel-uas-3", 70), "Content-Length: 0\n",
		"Require: 100rel\nContent-Length: 0\n", 1))
	res := raw.Expect("SIP/2.0 420", 3*time.Second)
	if siptest.Header(res, "Unsupported") != "100rel" {
		t.Fatalf("Unsupported %q", siptest.Header(res, "Unsupported"))
	}
}
