package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"callpath/internal/siptest"
)

// The caller reaches callpath over each stream transport; callpath answers on
// the same connection and sends the callee's BYE back over it (the caller's
// Contact is not reachable for a browser-like WS client, so the flow is used).
func TestCallerOverTLSAndWebSocket(t *testing.T) {
	ca := siptest.NewTestCA(t)
	for _, transport := range []string{"tls", "ws", "wss"} {
		t.Run(transport, func(t *testing.T) {
			callee := siptest.NewPhone(t, "udp")
			gw := startGateway(t, callee.Addr, fmt.Sprintf(`
sip:
  listen: {tls: "127.0.0.1:0", ws: "127.0.0.1:0", wss: "127.0.0.1:0"}
  tls: {cert_file: %q, key_file: %q}
`, ca.CertFile, ca.KeyFile))
			var caller *siptest.Phone
			if transport == "ws" {
				caller = siptest.NewPhone(t, transport)
			} else {
				caller = siptest.NewTLSPhone(t, transport, ca)
			}
			gwAddr := gw.app.SIPAddr(transport)
			if gwAddr == "" {
				t.Fatalf("gateway does not listen on %s", transport)
			}
			dlg, in := dialAnswered(t, gw, caller, callee, gwAddr)
			if v := in.Req.Via(); v.Transport != "UDP" {
				t.Fatalf("callee leg Via transport %s, want UDP", v.Transport)
			}
			if c := dlg.InviteResponse.Contact(); c == nil {
				t.Fatal("no Contact in 200 OK")
			} else if tp, _ := c.Address.UriParams.Get("transport"); transport != "tls" && tp != transport {
				t.Fatalf("200 OK Contact %s, want transport=%s", c.Address.String(), transport)
			}
			calleeHangsUp(t, caller, dlg, in)
			eventually(t, 2*time.Second, "no active call", func() bool { return gw.app.ActiveCalls() == 0 })
		})
	}
}

// Outgoing TLS: callpath verifies the callee's certificate against
// sip.tls.ca_file; without that CA the call is not placed.
func TestOutgoingTLSVerifiesTheCallee(t *testing.T) {
	ca := siptest.NewTestCA(t)
	listen := fmt.Sprintf(`
sip:
  listen: {tls: "127.0.0.1:0"}
  tls: {cert_file: %q, key_file: %q%s}
`, ca.CertFile, ca.KeyFile, "%s")
	callee := siptest.NewTLSPhone(t, "tls", ca)
	target := callee.Addr + ";transport=tls"

	gw := startGateway(t, target, fmt.Sprintf(listen, fmt.Sprintf(", ca_file: %q", ca.CAFile)))
	caller := siptest.NewPhone(t, "udp")
	dlg, in := dialAnswered(t, gw, caller, callee, gw.udp())
	if v := in.Req.Via(); v.Transport != "TLS" {
		t.Fatalf("callee leg Via transport %s, want TLS", v.Transport)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	callee.WaitRequest(5*time.Second, siptest.Method(sip.BYE))

	// Same callee, but the gateway trusts only the system CAs.
	untrusting := startGateway(t, target, fmt.Sprintf(listen, ""))
	res, err := caller.Dial(ctx, caller.Invite(untrusting.udp(), "+4790000002", sdpFor(caller, 1, "sendrecv")))
	if err != nil {
		t.Fatal(err)
	}
	expectFinal(ctx, t, res, 503) // the callee's certificate is not trusted
	callee.NoCall(100 * time.Millisecond)
}
