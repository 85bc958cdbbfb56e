package e2e

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"callpath/b2bua"
	"callpath/cdr"
	"callpath/internal/siptest"
)

// ring places a call from caller through the gateway and returns it once the
// callee has the INVITE; ctx bounds the test's waits.
func ring(ctx context.Context, t *testing.T, caller, callee *siptest.Phone, gwAddr string) (*sipgo.DialogClientSession, *siptest.Incoming) {
	t.Helper()
	dlg, err := caller.Dial(ctx, caller.Invite(gwAddr, "+4790000002", sdpFor(caller, 1, "sendrecv")))
	if err != nil {
		t.Fatal(err)
	}
	return dlg, callee.NextCall(5 * time.Second)
}

// expectFinal waits for the caller's INVITE to fail with code.
func expectFinal(ctx context.Context, t *testing.T, dlg *sipgo.DialogClientSession, code int) {
	t.Helper()
	err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{})
	var resErr *sipgo.ErrDialogResponse
	if !errors.As(err, &resErr) || resErr.Res.StatusCode != code {
		t.Fatalf("caller got %v, want %d", err, code)
	}
}

// calleeHangsUp sends BYE from the callee and returns the BYE the caller
// receives, checked to belong to the caller's own dialog.
func calleeHangsUp(t *testing.T, caller *siptest.Phone, dlg *sipgo.DialogClientSession, in *siptest.Incoming) *sip.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := in.Dialog.Bye(ctx); err != nil {
		t.Fatalf("callee bye: %v", err)
	}
	bye := caller.WaitRequest(5*time.Second, siptest.Method(sip.BYE))
	if bye.CallID().Value() != dlg.InviteRequest.CallID().Value() {
		t.Fatal("BYE reached the caller on another dialog")
	}
	return bye
}

func sdpFor(p *siptest.Phone, version int, dir string) []byte {
	host, portStr, _ := net.SplitHostPort(p.Addr)
	port, _ := strconv.Atoi(portStr)
	return siptest.SDP(host, port+1000, version, dir)
}

func TestCancelBeforeAnswer(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "")
	caller := siptest.NewPhone(t, "udp")

	ctx, cancel := context.WithCancel(context.Background())
	dlg, err := caller.Dial(context.Background(), caller.Invite(gw.udp(), "+4790000002", sdpFor(caller, 1, "sendrecv")))
	if err != nil {
		t.Fatal(err)
	}
	in := callee.NextCall(5 * time.Second)
	ringing := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- dlg.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(r *sip.Response) error {
			if r.StatusCode == 180 {
				close(ringing)
			}
			return nil
		}})
	}()
	if err := in.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	<-ringing
	cancel() // sipgo sends CANCEL
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitAnswer after cancel: %v", err)
	}
	if dlg.InviteResponse == nil || dlg.InviteResponse.StatusCode != 487 {
		t.Fatalf("caller's INVITE ended with %v, want 487", dlg.InviteResponse)
	}
	// The callee gets a CANCEL for its own INVITE (its transaction ends 487).
	eventually(t, 5*time.Second, "callee INVITE transaction cancelled", txEnded(in))
	r := gw.cdrs(1)[0]
	if r.FinalCode != 487 || r.HangupBy != cdr.HangupCaller || !r.AnsweredAt.IsZero() {
		t.Fatalf("CDR %+v", r)
	}
}

func TestBusyRelayed(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "")
	caller := siptest.NewPhone(t, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, in := ring(ctx, t, caller, callee, gw.udp())
	if err := in.Respond(486, "Busy Here", nil); err != nil {
		t.Fatal(err)
	}
	expectFinal(ctx, t, dlg, 486)
	// The callee's transaction got its ACK from us (hop by hop).
	if err := in.WaitFinal(5 * time.Second); err != nil {
		t.Fatalf("callee 486: %v", err)
	}
	r := gw.cdrs(1)[0]
	if r.FinalCode != 486 || r.HangupBy != cdr.HangupCallee {
		t.Fatalf("CDR %+v", r)
	}
	eventually(t, 2*time.Second, "outcome metric", func() bool {
		return gw.metric(`callpath_call_outcomes_total{code="486"}`) == "1"
	})
}

func TestReinviteBothDirections(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "")
	caller := siptest.NewPhone(t, "udp")
	dlg, in := dialAnswered(t, gw, caller, callee, gw.udp())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Caller puts the call on hold.
	reinv := sip.NewRequest(sip.INVITE, dlg.InviteResponse.Contact().Address)
	reinv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	reinv.SetBody(sdpFor(caller, 2, "sendonly"))
	res, err := dlg.Do(ctx, reinv)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("re-INVITE from caller: %v %v", res, err)
	}
	if !strings.Contains(string(res.Body()), "a=recvonly") {
		t.Fatalf("caller got answer %q, want the callee's recvonly", res.Body())
	}
	got := callee.WaitRequest(5*time.Second, func(r *sip.Request) bool {
		return r.IsInvite() && r.To().Params.Has("tag")
	})
	if !strings.Contains(string(got.Body()), "a=sendonly") || got.CallID().Value() != in.Req.CallID().Value() {
		t.Fatalf("callee's re-INVITE: call-id %s body %q", got.CallID().Value(), got.Body())
	}
	ack := sip.NewRequest(sip.ACK, dlg.InviteResponse.Contact().Address)
	if err := dlg.WriteRequest(ack); err != nil {
		t.Fatal(err)
	}
	callee.WaitRequest(5*time.Second, func(r *sip.Request) bool {
		return r.IsAck() && r.CSeq().SeqNo == got.CSeq().SeqNo
	})

	// Callee resumes: a re-INVITE in the other direction.
	reinv2 := sip.NewRequest(sip.INVITE, in.Req.Contact().Address)
	reinv2.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	reinv2.SetBody(sdpFor(callee, 3, "sendonly"))
	res2, err := in.Dialog.Do(ctx, reinv2)
	if err != nil || res2.StatusCode != 200 || !strings.Contains(string(res2.Body()), "a=recvonly") {
		t.Fatalf("re-INVITE from callee: %v %v", res2, err)
	}
	ack2 := sip.NewRequest(sip.ACK, in.Req.Contact().Address)
	ack2.AppendHeader(&sip.CSeqHeader{SeqNo: res2.CSeq().SeqNo, MethodName: sip.ACK})
	if err := in.Dialog.WriteRequest(ack2); err != nil {
		t.Fatal(err)
	}
	caller.WaitRequest(5*time.Second, func(r *sip.Request) bool {
		return r.IsAck() && r.CallID().Value() == dlg.InviteRequest.CallID().Value()
	})

	// UPDATE and INFO cross too.
	upd := sip.NewRequest(sip.INFO, dlg.InviteResponse.Contact().Address)
	upd.AppendHeader(sip.NewHeader("Content-Type", "application/dtmf-relay"))
	upd.SetBody([]byte("Signal=5\r\nDuration=160\r\n"))
	if res, err := dlg.Do(ctx, upd); err != nil || res.StatusCode != 200 {
		t.Fatalf("INFO: %v %v", res, err)
	}
	info := callee.WaitRequest(5*time.Second, siptest.Method(sip.INFO))
	if string(info.Body()) != "Signal=5\r\nDuration=160\r\n" {
		t.Fatalf("INFO body %q", info.Body())
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	callee.WaitRequest(5*time.Second, siptest.Method(sip.BYE))
}

func TestMaxForwardsZeroGets483(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "")
	raw := siptest.NewRawUDP(t)
	raw.Send(gw.udp(), rawInvite(raw.Addr(), gw.udp(), "mf0", 0))
	res := raw.Expect("SIP/2.0 483", 3*time.Second)
	if !strings.Contains(res, "branch=z9hG4bKmf0") {
		t.Fatalf("483 does not answer our INVITE:\n%s", res)
	}
	raw.Send(gw.udp(), "ACK sip:+4790000002@"+gw.udp()+" SIP/2.0\nVia: SIP/2.0/UDP "+raw.Addr()+";branch=z9hG4bKmf0\nFrom: <sip:+4790000001@127.0.0.1>;tag=a\nTo: <sip:+4790000002@127.0.0.1>;tag="+toTag(res)+"\nCall-ID: mf0\nCSeq: 1 ACK\nContent-Length: 0\n\n")
	callee.NoCall(300 * time.Millisecond)

	// Max-Forwards 1 is still forwarded, with 0.
	raw.Send(gw.udp(), rawInvite(raw.Addr(), gw.udp(), "mf1", 1))
	in := callee.NextCall(3 * time.Second)
	if mf := in.Req.MaxForwards(); mf == nil || mf.Val() != 0 {
		t.Fatalf("forwarded Max-Forwards %v, want 0", in.Req.MaxForwards())
	}
}

func rawInvite(from, gw, callID string, maxFwd int) string {
	return "INVITE sip:+4790000002@" + gw + " SIP/2.0\n" +
		"Via: SIP/2.0/UDP " + from + ";branch=z9hG4bK" + callID + "\n" +
		"Max-Forwards: " + strconv.Itoa(maxFwd) + "\n" +
		"From: <sip:+4790000001@127.0.0.1>;tag=a\n" +
		"To: <sip:+4790000002@127.0.0.1>\n" +
		"Call-ID: " + callID + "\n" +
		"CSeq: 1 INVITE\n" +
		"Contact: <sip:" + from + ">\n" +
		"Content-Length: 0\n\n"
}

// rawOfferInvite is rawInvite with an SDP offer (sdpBody) and extra header
// lines.
func rawOfferInvite(from, gw, callID string, extra ...string) string {
	headers := ""
	for _, h := range extra {
		headers += h + "\n"
	}
	return strings.Replace(rawInvite(from, gw, callID, 70), "Content-Length: 0\n",
		headers+"Content-Type: application/sdp\nContent-Length: "+strconv.Itoa(len(sdpBody))+"\n", 1) + sdpBody
}

func toTag(msg string) string {
	to := siptest.Header(msg, "To")
	if i := strings.Index(to, "tag="); i >= 0 {
		return strings.SplitN(to[i+4:], ";", 2)[0]
	}
	return ""
}

func TestUnknownDialogGets481(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "")
	raw := siptest.NewRawUDP(t)
	for _, method := range []string{"BYE", "INVITE", "UPDATE", "INFO"} {
		raw.Send(gw.udp(), method+" sip:x@"+gw.udp()+" SIP/2.0\n"+
			"Via: SIP/2.0/UDP "+raw.Addr()+";branch=z9hG4bK481"+method+"\n"+
			"Max-Forwards: 70\n"+
			"From: <sip:a@127.0.0.1>;tag=a\n"+
			"To: <sip:b@127.0.0.1>;tag=nosuchdialog\n"+
			"Call-ID: unknown-dialog\n"+
			"CSeq: 2 "+method+"\n"+
			"Content-Length: 0\n\n")
		res := raw.Expect("SIP/2.0 481", 3*time.Second)
		if !strings.Contains(siptest.Header(res, "CSeq"), method) {
			t.Fatalf("481 for the wrong request: %s", siptest.Header(res, "CSeq"))
		}
	}
	// A CANCEL matching no INVITE transaction.
	raw.Send(gw.udp(), "CANCEL sip:x@"+gw.udp()+" SIP/2.0\nVia: SIP/2.0/UDP "+raw.Addr()+";branch=z9hG4bKnone\nMax-Forwards: 70\nFrom: <sip:a@127.0.0.1>;tag=a\nTo: <sip:b@127.0.0.1>\nCall-ID: none\nCSeq: 1 CANCEL\nContent-Length: 0\n\n")
	raw.Expect("SIP/2.0 481", 3*time.Second)
}

func TestSessionIDCreatedWhenAbsent(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "")
	caller := siptest.NewPhone(t, "udp")
	dlg, in := dialAnswered(t, gw, caller, callee, gw.udp())
	h := in.Req.GetHeader("Session-ID")
	if h == nil {
		t.Fatal("no Session-ID on the outgoing leg")
	}
	sid, err := b2bua.ParseSessionID(h.Value())
	if err != nil || sid.Local == b2bua.NullUUID || sid.Remote != b2bua.NullUUID {
		t.Fatalf("Session-ID %q: %+v %v", h.Value(), sid, err)
	}
	// The caller's 200 carries the same session, seen from the callee's side.
	back := dlg.InviteResponse.GetHeader("Session-ID")
	if back == nil || !strings.HasSuffix(back.Value(), "remote="+sid.Local) {
		t.Fatalf("200 OK Session-ID %v, want remote=%s", back, sid.Local)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = dlg.Bye(ctx)
	if r := gw.cdrs(1)[0]; r.SessionID != sid.Local {
		t.Fatalf("CDR Session-ID %q, want %q", r.SessionID, sid.Local)
	}
}

func TestNoAnswerTimeout(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "sip: {no_answer_timeout: 300ms}")
	caller := siptest.NewPhone(t, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, in := ring(ctx, t, caller, callee, gw.udp())
	_ = in.Respond(180, "Ringing", nil)
	expectFinal(ctx, t, dlg, 408)
	eventually(t, 5*time.Second, "callee cancelled", txEnded(in))
	if r := gw.cdrs(1)[0]; r.FinalCode != 408 || r.HangupBy != cdr.HangupGateway || r.Reason != "no answer" {
		t.Fatalf("CDR %+v", r)
	}
}

func TestOptionsAndUnknownMethods(t *testing.T) {
	gw := startGateway(t, "127.0.0.1:9", "")
	raw := siptest.NewRawUDP(t)
	raw.Send(gw.udp(), "OPTIONS sip:"+gw.udp()+" SIP/2.0\nVia: SIP/2.0/UDP "+raw.Addr()+";branch=z9hG4bKopt\nMax-Forwards: 70\nFrom: <sip:mon@127.0.0.1>;tag=m\nTo: <sip:"+gw.udp()+">\nCall-ID: opt\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
	res := raw.Expect("SIP/2.0 200", 3*time.Second)
	if !strings.Contains(siptest.Header(res, "Allow"), "INVITE") {
		t.Fatalf("OPTIONS 200 without Allow:\n%s", res)
	}
	raw.Send(gw.udp(), "SUBSCRIBE sip:"+gw.udp()+" SIP/2.0\nVia: SIP/2.0/UDP "+raw.Addr()+";branch=z9hG4bKsub\nMax-Forwards: 70\nFrom: <sip:mon@127.0.0.1>;tag=m\nTo: <sip:"+gw.udp()+">\nCall-ID: sub\nCSeq: 1 SUBSCRIBE\nEvent: presence\nContent-Length: 0\n\n")
	res = raw.Expect("SIP/2.0 405", 3*time.Second)
	if siptest.Header(res, "Allow") == "" {
		t.Fatalf("405 without Allow:\n%s", res)
	}
}

func TestMalformedInput(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "")
	raw := siptest.NewRawUDP(t)
	// Unparseable datagrams are dropped without an answer.
	for _, junk := range [][]byte{
		[]byte("\x00\x01\x02garbage"),
		[]byte("INVITE\r\n\r\n"),
		[]byte("INVITE sip:x@y SIP/2.0\r\nContent-Length: 99999\r\n\r\nshort"),
		[]byte(strings.Repeat("A", 60000)),
	} {
		raw.SendBytes(gw.udp(), junk)
	}
	// The drops are counted: three fail to parse; the binary one does not
	// even start like SIP and is not tried.
	eventually(t, 2*time.Second, "unparseable datagrams counted", func() bool {
		return gw.metric(`callpath_sip_messages_dropped_total{reason="unparseable"}`) == "3"
	})
	// Parseable but missing what a request needs: 400.
	raw.Send(gw.udp(), "INVITE sip:+4790000002@"+gw.udp()+" SIP/2.0\nVia: SIP/2.0/UDP "+raw.Addr()+";branch=z9hG4bKnotag\nMax-Forwards: 70\nFrom: <sip:a@127.0.0.1>\nTo: <sip:b@127.0.0.1>\nCall-ID: notag\nCSeq: 1 INVITE\nContent-Length: 0\n\n")
	res := raw.Expect("SIP/2.0 400", 3*time.Second)
	if !strings.Contains(strings.SplitN(res, "\r\n", 2)[0], "From tag") {
		t.Fatalf("400 reason does not say what is wrong: %s", strings.SplitN(res, "\r\n", 2)[0])
	}
	raw.Send(gw.udp(), "INVITE sip:+4790000002@"+gw.udp()+" SIP/2.0\nVia: SIP/2.0/UDP "+raw.Addr()+";branch=z9hG4bKcseq\nMax-Forwards: 70\nFrom: <sip:a@127.0.0.1>;tag=x\nTo: <sip:b@127.0.0.1>\nCall-ID: cseq\nCSeq: 1 BYE\nContent-Length: 0\n\n")
	raw.Expect("SIP/2.0 400", 3*time.Second)
	// Require of an extension we do not do: 420 with Unsupported.
	raw.Send(gw.udp(), "INVITE sip:+4790000002@"+gw.udp()+" SIP/2.0\nVia: SIP/2.0/UDP "+raw.Addr()+";branch=z9hG4bKreq\nMax-Forwards: 70\nFrom: <sip:a@127.0.0.1>;tag=x\nTo: <sip:b@127.0.0.1>\nCall-ID: req\nCSeq: 1 INVITE\nRequire: 100rel\nContent-Length: 0\n\n")
	res = raw.Expect("SIP/2.0 420", 3*time.Second)
	if siptest.Header(res, "Unsupported") != "100rel" {
		t.Fatalf("420 Unsupported %q", siptest.Header(res, "Unsupported"))
	}
	callee.NoCall(200 * time.Millisecond)
	// The gateway still works.
	caller := siptest.NewPhone(t, "udp")
	dlg, _ := dialAnswered(t, gw, caller, callee, gw.udp())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "no active call", func() bool { return gw.app.ActiveCalls() == 0 })
}

// WebRTC offers are several kilobytes; over UDP they go out fragmented
// rather than being refused.
func TestLargeSDPOverUDP(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "")
	caller := siptest.NewPhone(t, "udp")
	big := sdpFor(caller, 1, "sendrecv")
	for i := 0; len(big) < 5000; i++ {
		big = append(big, []byte("a=candidate:"+strconv.Itoa(i)+" 1 udp 2122260223 192.0.2.1 5"+strconv.Itoa(1000+i)+" typ host generation 0 network-id 1\r\n")...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, err := caller.Dial(ctx, caller.Invite(gw.udp(), "+4790000002", big))
	if err != nil {
		t.Fatal(err)
	}
	in := callee.NextCall(5 * time.Second)
	if string(in.Req.Body()) != string(big) {
		t.Fatalf("callee got %d bytes of SDP, want %d", len(in.Req.Body()), len(big))
	}
	_ = in.Respond(200, "OK", big)
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(dlg.InviteResponse.Body()) != len(big) {
		t.Fatalf("caller got %d bytes of SDP", len(dlg.InviteResponse.Body()))
	}
	_ = dlg.Ack(ctx)
}

// The same INVITE (Call-ID, From tag, CSeq) arriving with another branch is a
// merged request (RFC 3261 §8.2.2.2): 482, and no second call.
func TestMergedRequestGets482(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "")
	raw := siptest.NewRawUDP(t)
	first := rawInvite(raw.Addr(), gw.udp(), "merged", 70)
	raw.Send(gw.udp(), first)
	in := callee.NextCall(3 * time.Second)
	raw.Send(gw.udp(), first) // a plain retransmission: absorbed
	second := strings.Replace(first, "branch=z9hG4bKmerged", "branch=z9hG4bKother", 1)
	raw.Send(gw.udp(), second)
	res := raw.Expect("SIP/2.0 482", 3*time.Second)
	if !strings.Contains(siptest.Header(res, "Via"), "z9hG4bKother") {
		t.Fatalf("482 answers the wrong request:\n%s", res)
	}
	callee.NoCall(200 * time.Millisecond)
	_ = in.Respond(486, "Busy Here", nil)
	raw.Expect("SIP/2.0 486", 3*time.Second)
}
