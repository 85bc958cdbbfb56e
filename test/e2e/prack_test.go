package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"callpath/internal/siptest"
)

// A callee sending its provisional responses reliably (RFC 3262) gets
// each one PRACKed by callpath, in its early dialog, once: a
// retransmission (same RSeq) and one out of order (a gap in RSeq) get no
// PRACK and are not relayed; the caller sees ordinary provisional
// responses, and gets the SDP answer of the reliable 183 in the 200 that
// came without one.
func TestReliableProvisionalsArePRACKedOnce(t *testing.T) {
	gw, callee, dlg, ctx := callRawCallee(t, true)
	provisional := make(chan *sip.Response, 16)
	answered := make(chan error, 1)
	go func() {
		answered <- dlg.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
			if res.IsProvisional() && res.StatusCode != 100 {
				provisional <- res
			}
			return nil
		}})
	}()
	inv, from := callee.ExpectFrom("INVITE ", 3*time.Second)
	if !strings.Contains(siptest.Header(inv, "Supported"), "100rel") {
		t.Fatalf("the INVITE does not offer 100rel: Supported %q", siptest.Header(inv, "Supported"))
	}
	invCSeq, _, _ := strings.Cut(siptest.Header(inv, "CSeq"), " ")
	contact := "Contact: <sip:" + callee.Addr() + ">"
	reliable := func(code int, reason string, rseq int, body string) string {
		extra := []string{contact, "Require: 100rel", "RSeq: " + strconv.Itoa(rseq)}
		if body != "" {
			extra = append(extra, "Content-Type: application/sdp")
		}
		return siptest.ResponseTo(inv, code, reason, "rel1", extra, body)
	}
	var lastPRACK int
	prackFor := func(rseq int) {
		t.Helper()
		prack := callee.Expect("PRACK ", 3*time.Second)
		// Our 200 may come later than T1: the PRACK's own transaction
		// then sends it again (same CSeq), which gets its 200 again.
		for lastPRACK != 0 && siptest.Header(prack, "CSeq") == strconv.Itoa(lastPRACK)+" PRACK" {
			callee.Send(from, siptest.ResponseTo(prack, 200, "OK", "", nil, ""))
			prack = callee.Expect("PRACK ", 3*time.Second)
		}
		if got, want := siptest.Header(prack, "RAck"), strconv.Itoa(rseq)+" "+invCSeq+" INVITE"; got != want {
			t.Fatalf("RAck %q, want %q (the PRACK of another response?)", got, want)
		}
		if !strings.Contains(siptest.Header(prack, "To"), "tag=rel1") || siptest.Header(prack, "Call-ID") != siptest.Header(inv, "Call-ID") {
			t.Fatalf("PRACK outside the early dialog:\n%s", prack)
		}
		n, _, _ := strings.Cut(siptest.Header(prack, "CSeq"), " ")
		cseq, _ := strconv.Atoi(n)
		if first, _ := strconv.Atoi(invCSeq); cseq <= first || cseq <= lastPRACK {
			t.Fatalf("PRACK CSeq %d after the INVITE's %d and the last PRACK's %d", cseq, first, lastPRACK)
		}
		lastPRACK = cseq
		callee.Send(from, siptest.ResponseTo(prack, 200, "OK", "", nil, ""))
	}
	relayed := func(code int) *sip.Response {
		t.Helper()
		select {
		case res := <-provisional:
			if res.StatusCode != code || res.GetHeader("RSeq") != nil || res.GetHeader("Require") != nil {
				t.Fatalf("caller got %d (RSeq %v, Require %v), want an ordinary %d", res.StatusCode,
					res.GetHeader("RSeq"), res.GetHeader("Require"), code)
			}
			return res
		case <-ctx.Done():
			t.Fatalf("caller never got the %d", code)
		}
		return nil
	}

	session := reliable(183, "Session Progress", 7, sdpBody)
	callee.Send(from, session)
	prackFor(7)
	if early := relayed(183); string(early.Body()) != sdpBody {
		t.Fatalf("the 183's SDP did not reach the caller: %q", early.Body())
	}
	// A retransmission of the 183, then a 180 out of order (RSeq 9 before
	// 8): neither is PRACKed. The first PRACK after them is for 8.
	callee.Send(from, session)
	callee.Send(from, reliable(180, "Ringing", 9, ""))
	callee.Send(from, reliable(180, "Ringing", 8, ""))
	prackFor(8)
	relayed(180)
	callee.Send(from, reliable(180, "Ringing", 9, "")) // now in order
	prackFor(9)
	relayed(180)

	// The 200 has no SDP: the answer was in the PRACKed 183.
	callee.Send(from, siptest.ResponseTo(inv, 200, "OK", "rel1", []string{contact}, ""))
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	if got := string(dlg.InviteResponse.Body()); got != sdpBody || dlg.InviteResponse.ContentType() == nil ||
		dlg.InviteResponse.ContentType().Value() != "application/sdp" {
		t.Fatalf("200 at the caller: Content-Type %v, body %q; want the 183's answer", dlg.InviteResponse.ContentType(), got)
	}
	select {
	case res := <-provisional:
		t.Fatalf("the caller got another %d: a retransmitted or out-of-order provisional was relayed", res.StatusCode)
	default:
	}
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	callee.Expect("ACK ", 3*time.Second)
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	bye := callee.Expect("BYE ", 3*time.Second)
	n, _, _ := strings.Cut(siptest.Header(bye, "CSeq"), " ")
	if cseq, _ := strconv.Atoi(n); cseq <= lastPRACK {
		t.Fatalf("BYE CSeq %d not above the last PRACK's %d", cseq, lastPRACK)
	}
	callee.Send(from, siptest.ResponseTo(bye, 200, "OK", "", nil, ""))
	eventually(t, 5*time.Second, "the call ended", func() bool { return gw.app.ActiveCalls() == 0 })
	if got := gw.metric(`callpath_sip_requests_total{direction="out",method="PRACK"}`); got != "3" {
		t.Errorf("PRACKs counted: %q, want 3", got)
	}
}

// An INVITE without an offer does not offer 100rel: the callee would make
// its offer in a reliable provisional and want the answer in the PRACK,
// which only the caller could give.
func TestOfferlessInviteDoesNotOffer100rel(t *testing.T) {
	_, callee, _, _ := callRawCallee(t, false)
	inv, _ := callee.ExpectFrom("INVITE ", 3*time.Second)
	if s := siptest.Header(inv, "Supported"); strings.Contains(s, "100rel") {
		t.Fatalf("offerless INVITE with Supported %q", s)
	}
}

// callRawCallee starts a gateway routing to a raw UDP callee and has a
// sipgo phone call through it, with an SDP offer or without; ctx bounds
// the test's waits.
func callRawCallee(t *testing.T, offer bool) (*gateway, *siptest.RawUDP, *sipgo.DialogClientSession, context.Context) {
	t.Helper()
	callee := siptest.NewRawUDP(t)
	gw := startGateway(t, callee.Addr(), "")
	caller := siptest.NewPhone(t, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	var sdp []byte
	if offer {
		sdp = sdpFor(caller, 1, "sendrecv")
	}
	dlg, err := caller.Dial(ctx, caller.Invite(gw.udp(), bob, sdp))
	if err != nil {
		t.Fatal(err)
	}
	return gw, callee, dlg, ctx
}
