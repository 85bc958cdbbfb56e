package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"

	"callpath/cdr"
	"callpath/internal/sipptest"
)

// Interop: the same flows as the in-process tests, driven by SIPp, a real
// and independent SIP implementation, on both sides of callpath, over UDP and
// TCP. The callee scenarios check what the B2BUA must do to the INVITE
// (Session-ID kept, Max-Forwards decremented); SIPp fails the call otherwise.
func TestSIPpInterop(t *testing.T) {
	if err := sipptest.Available(); err != nil {
		t.Fatalf("SIPp is required (apt-get install sip-tester, or make deps): %v", err)
	}
	type flow struct {
		name, uac, uas     string
		uacExtra, uasExtra []string
		calls              int
		config             string                     // the gateway's, beyond the defaults
		check              func(*testing.T, *gateway) // more to check once both SIPps are done
	}
	flows := []flow{
		{name: "basic call, caller hangs up", uac: "uac_basic.xml", uas: "uas_basic.xml", uacExtra: []string{"-d", "200"}, calls: 3},
		{name: "callee hangs up", uac: "uac_callee_bye.xml", uas: "uas_bye.xml", calls: 2},
		{name: "cancel while ringing", uac: "uac_cancel.xml", uas: "uas_ring_forever.xml", calls: 2},
		{name: "busy relayed", uac: "uac_expect_486.xml", uas: "uas_busy.xml", calls: 2},
		{name: "re-INVITE hold", uac: "uac_reinvite.xml", uas: "uas_reinvite.xml", calls: 2},
		{name: "reliable provisionals PRACKed by the B2BUA", uac: "uac_100rel.xml", uas: "uas_100rel.xml", uacExtra: []string{"-d", "100"}, calls: 2},
		{name: "caller requiring 100rel PRACKs the B2BUA's 180", uac: "uac_100rel_required.xml", uas: "uas_ring_forever.xml", calls: 2},
		// SIPp answers the dialog keepalive's OPTIONS (-aa: 200 to
		// in-dialog OPTIONS) on both sides of a call that outlasts two
		// rounds of probes; the call ends by the caller's BYE as usual.
		{name: "dialog keepalive answered by SIPp", uac: "uac_basic.xml", uas: "uas_basic.xml",
			uacExtra: []string{"-d", "2500", "-aa"}, uasExtra: []string{"-aa"}, calls: 1,
			config: "sip: {dialog_keepalive: 1s}", check: func(t *testing.T, gw *gateway) {
				if n, _ := strconv.Atoi(gw.metric(`callpath_sip_requests_total{direction="out",method="OPTIONS"}`)); n < 4 {
					t.Errorf("%d keepalive OPTIONS sent, want two rounds on both legs", n)
				}
				if r := gw.cdrs(1)[0]; r.HangupBy != cdr.HangupCaller {
					t.Errorf("CDR %+v: the call should end by the caller's BYE", r)
				}
			}},
	}
	for _, transport := range []string{"udp", "tcp"} {
		for _, f := range flows {
			t.Run(transport+"/"+f.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				uas := sipptest.Start(ctx, t, sipptest.Options{
					Scenario: "../sipp/" + f.uas, Transport: transport, Calls: f.calls, Timeout: 40 * time.Second,
					Extra: f.uasExtra,
				})
				target := uas.Addr()
				if transport == "tcp" {
					target += ";transport=tcp"
				}
				gw := startGateway(t, target, f.config)
				remote := gw.udp()
				if transport == "tcp" {
					remote = gw.tcp()
				}
				res := sipptest.Run(ctx, t, sipptest.Options{
					Scenario: "../sipp/" + f.uac, Remote: remote, Transport: transport,
					Calls: f.calls, Rate: 10, Extra: append([]string{"-s", "+4790000002"}, f.uacExtra...),
					Timeout: 40 * time.Second,
				})
				if err := res.Err(); err != nil {
					t.Fatalf("caller: %v", err)
				}
				ures, err := uas.Wait(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := ures.Err(); err != nil {
					t.Fatalf("callee: %v", err)
				}
				recs := gw.cdrs(f.calls)
				if len(recs) != f.calls {
					t.Fatalf("%d CDRs for %d calls", len(recs), f.calls)
				}
				eventually(t, 5*time.Second, "no active call", func() bool { return gw.app.ActiveCalls() == 0 })
				if f.check != nil {
					f.check(t, gw)
				}
			})
		}
		t.Run(transport+"/max-forwards 0 gets 483", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			gw := startGateway(t, "127.0.0.1:9", "")
			remote := gw.udp()
			if transport == "tcp" {
				remote = gw.tcp()
			}
			res := sipptest.Run(ctx, t, sipptest.Options{
				Scenario: "../sipp/uac_maxfwd0.xml", Remote: remote, Transport: transport, Calls: 1,
				Extra: []string{"-s", "+4790000002"}, Timeout: 20 * time.Second,
			})
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
