package e2e

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	commonv1 "callpath/api/gen/wgtwo/common/v1"
	sipbreakoutv1 "callpath/api/gen/wgtwo/sipbreakout/v1"
	"callpath/auth"
	"callpath/internal/sipptest"
)

// sippTASConfig turns on the gRPC API and lets TASes be plain sip: URIs
// (the SIPp TAS speaks UDP on 127.0.0.2).
const sippTASConfig = "grpc: {listen: \"127.0.0.1:0\"}\nregistrations: {allow_plain_sip: true}\n"

// registerOverGRPC upserts a registration through the SipBreakout gRPC API
// with the generated client, as a TAS provider would, with a dev token.
func registerOverGRPC(ctx context.Context, t *testing.T, gw *gateway, reg *sipbreakoutv1.Registration) {
	t.Helper()
	token, err := gw.app.DevIssuer().Mint(auth.Token{Subject: "tas-provider", Scopes: []string{"call.routing:write"}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(gw.app.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := sipbreakoutv1.NewSipBreakoutServiceClient(conn)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	res, err := client.UpsertRegistration(ctx, &sipbreakoutv1.UpsertRegistrationRequest{Registration: reg})
	if err != nil {
		t.Fatalf("UpsertRegistration: %v", err)
	}
	if res.GetStatusCode() != sipbreakoutv1.StatusCode_STATUS_CODE_OK {
		t.Fatalf("UpsertRegistration: %v %q", res.GetStatusCode(), res.GetErrorMessage())
	}
}

// tasFlow is one virtual-registration flow played by SIPp.
type tasFlow struct {
	// scenarios in test/sipp: the destination (static route of every
	// number), the TAS, the caller
	dest, tas, caller string
	callerExtra       []string
	// reg is the registration, given the TAS's sip_uri.
	reg func(tasURI string) *sipbreakoutv1.Registration
	// cdrsPerCall: a LOOP is two calls for the gateway (leg 1, leg 3).
	cdrsPerCall int
	// metrics: series -> value per call
	metrics map[string]int
}

// Interop with SIPp as the TAS of a virtual registration (DESIGN §3),
// registered through the gRPC API: the TAS runs on 127.0.0.2, which is how
// the gateway tells its calls from the caller's; caller and destination are
// SIPp on 127.0.0.1. The scenarios check what reaches each of them (prefix in
// the Request-URI, Session-ID unchanged, Max-Forwards), and the gateway's
// CDRs, breakout metrics and call table are checked once all SIPps are done.
func TestSIPpTASInterop(t *testing.T) {
	if err := sipptest.Available(); err != nil {
		t.Fatalf("SIPp is required (apt-get install sip-tester, or make deps): %v", err)
	}
	flows := []struct {
		name string
		tasFlow
	}{
		{"LOOP", tasFlow{
			dest: "uas_after_loop.xml", tas: "tas_loop.xml", caller: "uac_registered_caller.xml",
			callerExtra: []string{"-d", "200"},
			reg: func(tasURI string) *sipbreakoutv1.Registration {
				return &sipbreakoutv1.Registration{
					PhoneNumber: &commonv1.E164{E164: alice}, SipUri: tasURI,
					RouteType: sipbreakoutv1.RouteType_ROUTE_TYPE_LOOP, MobileOriginatingPrefix: "00",
				}
			},
			cdrsPerCall: 2,
			metrics: map[string]int{
				`callpath_breakout_loop_returns_total{route_type="LOOP"}`:                                1,
				`callpath_breakout_calls_total{direction="MO",outcome="answered_tas",route_type="LOOP"}`: 1,
			},
		}},
		{"FORK", tasFlow{
			dest: "uas_basic.xml", tas: "tas_fork.xml", caller: "uac_basic.xml",
			callerExtra: []string{"-d", "200"},
			reg: func(tasURI string) *sipbreakoutv1.Registration {
				return &sipbreakoutv1.Registration{
					PhoneNumber: &commonv1.E164{E164: bob}, SipUri: tasURI,
					RouteType: sipbreakoutv1.RouteType_ROUTE_TYPE_FORK, MobileTerminatingPrefix: "11",
				}
			},
			cdrsPerCall: 1,
			metrics: map[string]int{
				`callpath_breakout_calls_total{direction="MT",outcome="answered_destination",route_type="FORK"}`: 1,
			},
		}},
		{"FALLBACK", tasFlow{
			dest: "uas_busy.xml", tas: "tas_voicemail.xml", caller: "uac_callee_bye.xml",
			reg: func(tasURI string) *sipbreakoutv1.Registration {
				return &sipbreakoutv1.Registration{
					PhoneNumber: &commonv1.E164{E164: bob}, SipUri: tasURI,
					RouteType: sipbreakoutv1.RouteType_ROUTE_TYPE_FALLBACK, MobileTerminatingPrefix: "99",
				}
			},
			cdrsPerCall: 1,
			metrics: map[string]int{
				`callpath_breakout_calls_total{direction="MT",outcome="answered_tas",route_type="FALLBACK"}`: 1,
			},
		}},
	}
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) {
			for _, transport := range []string{"udp", "tcp"} {
				t.Run(transport, func(t *testing.T) { f.run(t, transport, 2) })
			}
		})
	}
}

// run starts the destination, the gateway routing every number to it, the
// TAS on 127.0.0.2, registers the TAS over gRPC, places calls calls with
// the caller (caller and destination over transport, the TAS over UDP),
// and checks every SIPp's result, the CDRs, the metrics and
// that no call is left.
func (f tasFlow) run(t *testing.T, transport string, calls int) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dest := sipptest.Start(ctx, t, sipptest.Options{
		Scenario: "../sipp/" + f.dest, Transport: transport, Calls: calls, Timeout: 40 * time.Second,
	})
	target := dest.Addr()
	if transport == "tcp" {
		target += ";transport=tcp"
	}
	gw := startGateway(t, target, sippTASConfig)
	remote := gw.udp()
	if transport == "tcp" {
		remote = gw.tcp()
	}
	// The TAS speaks UDP whatever the caller and destination do: a sip_uri
	// may not carry ;transport=tcp, and a sip: URI with a port means UDP
	// (RFC 3263). The gateway is its remote host: the LOOP TAS sends leg 3
	// to [remote_ip]:[remote_port].
	tas := sipptest.Start(ctx, t, sipptest.Options{
		Scenario: "../sipp/" + f.tas, Remote: gw.udp(), LocalIP: "127.0.0.2",
		Calls: calls, Timeout: 40 * time.Second,
	})
	registerOverGRPC(ctx, t, gw, f.reg(fmt.Sprintf("sip:127.0.0.2:%d", tas.Port())))

	res := sipptest.Run(ctx, t, sipptest.Options{
		Scenario: "../sipp/" + f.caller, Remote: remote, Transport: transport, Calls: calls, Rate: 10,
		Extra: append([]string{"-s", bob}, f.callerExtra...), Timeout: 40 * time.Second,
	})
	if err := res.Err(); err != nil {
		t.Fatalf("caller: %v", err)
	}
	for _, p := range []struct {
		role string
		proc *sipptest.Proc
	}{{"TAS", tas}, {"destination", dest}} {
		r, err := p.proc.Wait(ctx)
		if err != nil {
			t.Fatalf("%s: %v", p.role, err)
		}
		if err := r.Err(); err != nil {
			t.Fatalf("%s: %v", p.role, err)
		}
	}

	eventually(t, 5*time.Second, "no active call", func() bool { return gw.app.ActiveCalls() == 0 })
	want := calls * f.cdrsPerCall
	if recs := gw.cdrs(want); len(recs) != want {
		t.Fatalf("%d CDRs for %d calls, want %d", len(recs), calls, want)
	}
	for series, perCall := range f.metrics {
		want := strconv.Itoa(perCall * calls)
		eventually(t, 5*time.Second, series+" = "+want, func() bool { return gw.metric(series) == want })
	}
}
