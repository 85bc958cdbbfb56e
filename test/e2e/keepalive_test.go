package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"callpath/cdr"
	"callpath/internal/siptest"
)

// An answered call probes both dialogs with an in-dialog OPTIONS every
// sip.dialog_keepalive. While both sides answer, the call goes on; when
// the callee answers 481 (it no longer knows the dialog: it restarted, or
// missed a BYE), the call is hung up on both legs and the CDR says why.
func TestDialogKeepaliveEndsACallWhoseCalleeIsGone(t *testing.T) {
	callee := siptest.NewRawUDP(t)
	gw := startGateway(t, callee.Addr(), "sip: {dialog_keepalive: 1s}")
	inv, from, _ := answeredByRawCallee(t, gw, callee, "ka1")
	callee.Expect("ACK ", 3*time.Second)

	probe := func() string {
		t.Helper()
		opts := callee.Expect("OPTIONS ", 5*time.Second)
		if !strings.Contains(siptest.Header(opts, "To"), "tag=ka1") || siptest.Header(opts, "Call-ID") != siptest.Header(inv, "Call-ID") {
			t.Fatalf("OPTIONS outside the call's dialog:\n%s", opts)
		}
		return opts
	}
	callee.Send(from, siptest.ResponseTo(probe(), 200, "OK", "", nil, ""))
	callee.Send(from, siptest.ResponseTo(probe(), 405, "Method Not Allowed", "", nil, "")) // alive all the same
	if gw.app.ActiveCalls() != 1 {
		t.Fatal("the call ended while both sides answered")
	}
	callee.Send(from, siptest.ResponseTo(probe(), 481, "Call/Transaction Does Not Exist", "", nil, ""))
	bye := callee.Expect("BYE ", 5*time.Second)
	callee.Send(from, siptest.ResponseTo(bye, 481, "Call/Transaction Does Not Exist", "", nil, ""))
	eventually(t, 5*time.Second, "the call ended", func() bool { return gw.app.ActiveCalls() == 0 })
	r := gw.cdrs(1)[0]
	if r.HangupBy != cdr.HangupGateway || r.Reason != "dialog keepalive: callee 481 Call/Transaction Does Not Exist" {
		t.Fatalf("CDR %+v", r)
	}
}

// A caller that stops answering (no response to the OPTIONS at all, Timer
// F) is gone too; the callee, still there, gets a BYE.
func TestDialogKeepaliveEndsACallWhoseCallerIsSilent(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "sip: {dialog_keepalive: 1s}")
	caller := newRawCaller(t, gw.udp(), "ka-silent")
	in := callee.NextCall(3 * time.Second)
	if err := in.Respond(200, "OK", sdpFor(callee, 1, "sendrecv")); err != nil {
		t.Fatal(err)
	}
	if ok := caller.next(); !strings.HasPrefix(ok, "SIP/2.0 200") {
		t.Fatalf("want the 200:\n%s", ok)
	}
	caller.send("ACK")
	callee.WaitRequest(3*time.Second, siptest.Method(sip.ACK))
	caller.raw.Expect("OPTIONS ", 5*time.Second)                   // and never answered
	callee.WaitRequest(5*time.Second, siptest.Method(sip.OPTIONS)) // the callee is probed too, and answers
	callee.WaitRequest(15*time.Second, siptest.Method(sip.BYE))
	eventually(t, 5*time.Second, "the call ended", func() bool { return gw.app.ActiveCalls() == 0 })
	if r := gw.cdrs(1)[0]; r.Reason != "dialog keepalive: caller no response" {
		t.Fatalf("CDR %+v", r)
	}
}

// A device's call is a B2BUA call like any other: its dialogs are probed
// too, the WebRTC gateway answers, and the call goes on.
func TestDeviceCallSurvivesDialogKeepalive(t *testing.T) {
	sc := newWebRTCScene(t, "sip: {dialog_keepalive: 1s}\n")
	id := sc.callBob()
	in := sc.phone.NextCall(10 * time.Second)
	sc.rtp.StartTo(t, string(in.Req.Body()))
	if err := in.Respond(200, "OK", []byte(sc.rtp.SDP())); err != nil {
		t.Fatal(err)
	}
	sc.acceptConnected()
	sc.browser.WaitConnected(t, 10*time.Second)
	// A second probe comes only once both legs answered the first.
	eventually(t, 10*time.Second, "two rounds of probes", func() bool {
		n := 0
		for _, r := range sc.phone.Received() {
			if r.Method == sip.OPTIONS {
				n++
			}
		}
		return n >= 2
	})
	if code, got := sc.call("GET", "/sessions/"+id, nil); code != http.StatusOK || got["status"] != "Connected" {
		t.Fatalf("after the probes: %d %v", code, got)
	}
	sc.tones()
}

// readSIP reads one SIP message from a stream (headers, then
// Content-Length bytes of body).
func readSIP(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	length := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a SIP message: %v (so far %q)", err, b.String())
		}
		b.WriteString(line)
		if line == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	return b.String() + string(body)
}

// A caller over TCP whose connection closes during the call (a proxy's
// idle timer does that) is reached again on a new connection to its
// Contact: the keepalive's OPTIONS gets there and the call goes on.
// Before, every in-dialog request (BYE included) went to the closed flow
// and failed.
func TestInDialogRequestsReopenAClosedTCPFlow(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "sip: {dialog_keepalive: 1s}")
	contact, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = contact.Close() })
	conn, err := net.Dial("tcp4", gw.tcp())
	if err != nil {
		t.Fatal(err)
	}
	in := bufio.NewReader(conn)
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	invite := strings.ReplaceAll(rawOfferInvite(conn.LocalAddr().String(), gw.tcp(), "ka-tcp"), "SIP/2.0/UDP", "SIP/2.0/TCP")
	invite = strings.Replace(invite, "Contact: <sip:"+conn.LocalAddr().String()+">", "Contact: <sip:"+contact.Addr().String()+";transport=tcp>", 1)
	if _, err := conn.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(invite, "\r\n", "\n"), "\n", "\r\n"))); err != nil {
		t.Fatal(err)
	}
	call := callee.NextCall(3 * time.Second)
	if err := call.Respond(200, "OK", sdpFor(callee, 1, "sendrecv")); err != nil {
		t.Fatal(err)
	}
	var ok string
	for ok == "" || !strings.HasPrefix(ok, "SIP/2.0 200") {
		ok = readSIP(t, in)
	}
	ack := "ACK sip:+4790000002@" + gw.tcp() + " SIP/2.0\r\nVia: SIP/2.0/TCP " + conn.LocalAddr().String() + ";branch=z9hG4bKka-tcp-ack\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:+4790000001@127.0.0.1>;tag=a\r\nTo: <sip:+4790000002@127.0.0.1>;tag=" + toTag(ok) +
		"\r\nCall-ID: ka-tcp\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
	if _, err := conn.Write([]byte(ack)); err != nil {
		t.Fatal(err)
	}
	callee.WaitRequest(3*time.Second, siptest.Method(sip.ACK))
	_ = conn.Close() // the flow is gone

	_ = contact.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	again, err := contact.Accept()
	if err != nil {
		t.Fatalf("no new connection to the caller's Contact: %v", err)
	}
	defer again.Close()
	_ = again.SetDeadline(time.Now().Add(10 * time.Second))
	opts := readSIP(t, bufio.NewReader(again))
	if !strings.HasPrefix(opts, "OPTIONS ") || siptest.Header(opts, "Call-ID") != "ka-tcp" {
		t.Fatalf("want the keepalive's OPTIONS:\n%s", opts)
	}
	if _, err := again.Write([]byte(siptest.ResponseTo(opts, 200, "OK", "", nil, ""))); err != nil {
		t.Fatal(err)
	}
	// The call goes on: a second round of probes reaches the callee.
	eventually(t, 10*time.Second, "a second round of probes", func() bool {
		n := 0
		for _, r := range callee.Received() {
			if r.Method == sip.OPTIONS {
				n++
			}
		}
		return n >= 2
	})
	if gw.app.ActiveCalls() != 1 {
		t.Fatal("the call ended")
	}
}
