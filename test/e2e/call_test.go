package e2e

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"callpath/cdr"
	"callpath/internal/siptest"
)

const callerSID = "ab30317f1a784dc48ff824d0d3715d86"

// dialAnswered places a call from caller through gw to callee, has the callee
// ring and answer, ACKs, and returns both dialogs.
func dialAnswered(t *testing.T, gw *gateway, caller, callee *siptest.Phone, gwAddr string, headers ...sip.Header) (*sipgo.DialogClientSession, *siptest.Incoming) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	host, portStr, _ := net.SplitHostPort(caller.Addr)
	port, _ := strconv.Atoi(portStr)
	inv := caller.Invite(gwAddr, "+4790000002", siptest.SDP(host, port+1000, 1, "sendrecv"), headers...)
	dlg, err := caller.Dial(ctx, inv)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	in := callee.NextCall(5 * time.Second)
	calleeHost, calleePortStr, _ := net.SplitHostPort(callee.Addr)
	calleePort, _ := strconv.Atoi(calleePortStr)
	// sipgo handles each received message on its own goroutine, so a 180
	// and a 200 sent back to back may be processed out of order (and a 180
	// after the 200 is rightly dropped). Answer once the caller saw the 180.
	ringing := make(chan struct{})
	answered := make(chan error, 1)
	var provisional []int
	go func() {
		answered <- dlg.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
			provisional = append(provisional, res.StatusCode)
			if res.StatusCode == 180 {
				close(ringing)
			}
			return nil
		}})
	}()
	if err := in.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ringing:
	case err := <-answered:
		t.Fatalf("call ended before ringing: %v (saw %v)", err, provisional)
	case <-ctx.Done():
		t.Fatal("caller never saw the callee's 180")
	}
	if err := in.Respond(200, "OK", siptest.SDP(calleeHost, calleePort+1000, 1, "sendrecv")); err != nil {
		t.Fatal(err)
	}
	if err := <-answered; err != nil {
		t.Fatalf("wait answer: %v", err)
	}
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	callee.WaitRequest(5*time.Second, siptest.Method(sip.ACK))
	return dlg, in
}

func TestBasicCallCallerHangsUp(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			callee := siptest.NewPhone(t, transport)
			target := callee.Addr
			if transport == "tcp" {
				target += ";transport=tcp"
			}
			gw := startGateway(t, target, "")
			caller := siptest.NewPhone(t, transport)
			gwAddr := gw.udp()
			if transport == "tcp" {
				gwAddr = gw.tcp()
			}
			dlg, in := dialAnswered(t, gw, caller, callee, gwAddr,
				sip.NewHeader("Session-ID", callerSID+";remote=00000000000000000000000000000000"),
				sip.NewHeader("Max-Forwards", "70"),
				sip.NewHeader("X-Internal-Secret", "must-not-leak"))

			inv := in.Req
			// A new dialog, not a forwarded request.
			if inv.CallID().Value() == dlg.InviteRequest.CallID().Value() {
				t.Fatal("callee saw the caller's Call-ID: not a B2BUA")
			}
			if tagOf(inv.From()) == tagOf(dlg.InviteRequest.From()) {
				t.Fatal("callee saw the caller's From tag")
			}
			// Topology hiding: one Via (ours), our Contact, nothing of the caller.
			if vias := inv.GetHeaders("Via"); len(vias) != 1 {
				t.Fatalf("callee got %d Via headers, want 1", len(vias))
			}
			gwHost, gwPort, _ := net.SplitHostPort(gwAddr)
			if v := inv.Via(); v.Host != gwHost || strconv.Itoa(v.Port) != gwPort {
				t.Fatalf("Via %s:%d, want the gateway %s", v.Host, v.Port, gwAddr)
			}
			if c := inv.Contact(); c == nil || c.Address.Host != gwHost || strconv.Itoa(c.Address.Port) != gwPort {
				t.Fatalf("Contact %v, want the gateway", inv.Contact())
			}
			raw := inv.String()
			_, callerPort, _ := net.SplitHostPort(caller.Addr)
			for _, leak := range []string{":" + callerPort, "X-Internal-Secret", "siptest-phone", dlg.InviteRequest.CallID().Value()} {
				if strings.Contains(raw, leak) {
					t.Fatalf("INVITE to the callee leaks %q:\n%s", leak, raw)
				}
			}
			// RFC 7332 / RFC 7989.
			if mf := inv.MaxForwards(); mf == nil || mf.Val() != 69 {
				t.Fatalf("Max-Forwards %v, want 69", inv.MaxForwards())
			}
			if sid := inv.GetHeader("Session-ID"); sid == nil || !strings.HasPrefix(sid.Value(), callerSID) {
				t.Fatalf("Session-ID %v, want %s kept", sid, callerSID)
			}
			if inv.From().Address.User != "+4790000001" || inv.Recipient.User != "+4790000002" {
				t.Fatalf("numbers not kept: From %s, R-URI %s", inv.From().Address.User, inv.Recipient.User)
			}
			// The caller sees the callee's SDP, our Contact, no callee Via.
			ans := dlg.InviteResponse
			if !strings.Contains(string(ans.Body()), "m=audio") {
				t.Fatalf("200 OK to caller has no SDP: %q", ans.Body())
			}
			if c := ans.Contact(); c == nil || c.Address.Host != gwHost || strconv.Itoa(c.Address.Port) != gwPort {
				t.Fatalf("200 OK Contact %v, want the gateway", ans.Contact())
			}
			_, calleePort, _ := net.SplitHostPort(callee.Addr)
			if strings.Contains(ans.String(), ":"+calleePort) {
				t.Fatalf("200 OK to the caller leaks the callee address:\n%s", ans)
			}
			eventually(t, 2*time.Second, "one active call", func() bool { return gw.app.ActiveCalls() == 1 })

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := dlg.Bye(ctx); err != nil {
				t.Fatalf("bye: %v", err)
			}
			bye := callee.WaitRequest(5*time.Second, siptest.Method(sip.BYE))
			if bye.CallID().Value() != inv.CallID().Value() {
				t.Fatal("BYE reached the callee on another dialog")
			}
			if sid := bye.GetHeader("Session-ID"); sid == nil || !strings.HasPrefix(sid.Value(), callerSID) {
				t.Fatalf("BYE Session-ID %v", sid)
			}
			recs := gw.cdrs(1)
			r := recs[0]
			if r.FinalCode != 200 || r.HangupBy != cdr.HangupCaller || r.SessionID != callerSID ||
				r.From != "+4790000001" || r.To != "+4790000002" || r.AnsweredAt.IsZero() || len(r.Legs) != 2 {
				t.Fatalf("CDR %+v", r)
			}
			eventually(t, 2*time.Second, "no active call", func() bool { return gw.app.ActiveCalls() == 0 })
			if got := gw.metric(`callpath_call_outcomes_total{code="200"}`); got != "1" {
				t.Fatalf("call_outcomes_total{code=200} = %q, want 1", got)
			}
		})
	}
}

func tagOf(h *sip.FromHeader) string {
	tag, _ := h.Params.Get("tag")
	return tag
}

func TestCalleeHangsUp(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "")
	caller := siptest.NewPhone(t, "udp")
	dlg, in := dialAnswered(t, gw, caller, callee, gw.udp())
	bye := calleeHangsUp(t, caller, dlg, in)
	// The BYE toward the caller is a request of the caller's dialog: our tag in From.
	toTag, _ := dlg.InviteResponse.To().Params.Get("tag")
	if tagOf(bye.From()) != toTag {
		t.Fatalf("BYE From tag %q, want the tag of our 200 OK %q", tagOf(bye.From()), toTag)
	}
	r := gw.cdrs(1)[0]
	if r.HangupBy != cdr.HangupCallee || r.FinalCode != 200 {
		t.Fatalf("CDR %+v", r)
	}
}
