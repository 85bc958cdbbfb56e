package e2e

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"callpath/internal/dnstest"
	"callpath/internal/siptest"
	"callpath/registry"
)

// A TAS registered as sips:tas.test (no port) is found through DNS SRV
// (_sips._tcp.tas.test, served by a real dnsmasq) and reached over TLS
// with its certificate verified for tas.test against the configured CA
// bundle (RFC 5922: the URI's domain, not the SRV target). The same TAS
// published under another name (impostor.test) fails verification: the
// caller gets 503 and nothing reaches the TAS.
func TestTASOverTLSFoundBySRV(t *testing.T) {
	ca := siptest.NewTestCA(t)
	tas := siptest.NewTLSPhoneOn(t, "tls", "127.0.0.2", ca, ca.Issue(t, "tas.test"))
	_, tasPort, _ := net.SplitHostPort(tas.Addr)
	_, dns := dnstest.Start(t,
		"--srv-host=_sips._tcp.tas.test,pbx-1.tas.test,"+tasPort+",10,10",
		"--host-record=pbx-1.tas.test,127.0.0.2",
		"--srv-host=_sips._tcp.impostor.test,pbx-1.tas.test,"+tasPort+",10,10",
	)
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, fmt.Sprintf("sip: {dns_server: %q}\nregistrations: {tas_ca_file: %q}\n", dns, ca.CAFile))
	for number, uri := range map[string]string{bob: "sips:tas.test", carol: "sips:impostor.test"} {
		if _, err := gw.app.Registry().Upsert(context.Background(), registry.Principal{Subject: "pbx-provider"},
			registry.Registration{PhoneNumber: number, RouteType: registry.RouteLoopMT, SIPURI: uri}); err != nil {
			t.Fatal(err)
		}
	}
	caller := siptest.NewPhone(t, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	dlg, leg2 := ring(ctx, t, caller, tas, gw.udp())
	if u := leg2.Req.Recipient; u.Scheme != "sips" || u.Host != "tas.test" || u.User != bob {
		t.Errorf("leg 2 Request-URI %s, want sips:%s@tas.test", u.String(), bob)
	}
	if tp := leg2.Req.Transport(); tp != "TLS" {
		t.Errorf("leg 2 arrived over %s", tp)
	}
	answer(t, tas, leg2)
	waitAnswered(ctx, t, dlg)
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	tas.WaitRequest(5*time.Second, siptest.Method(sip.BYE))

	refused, err := caller.Dial(ctx, caller.Invite(gw.udp(), carol, sdpFor(caller, 1, "sendrecv")))
	if err != nil {
		t.Fatal(err)
	}
	expectFinal(ctx, t, refused, 503)
	invites := 0
	for _, r := range tas.Received() {
		if r.Method == sip.INVITE {
			invites++
		}
	}
	if invites != 1 {
		t.Fatalf("the TAS got %d INVITEs, want only the verified one", invites)
	}
}
