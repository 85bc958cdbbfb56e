package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"callpath/b2bua"
	"callpath/internal/siptest"
	"callpath/registry"
)

// The virtual registrations in the call path (DESIGN §3), with sipgo user
// agents as caller (+4790000001, 127.0.0.1), callee (+4790000002, the
// static route, 127.0.0.1) and TASes on their own loopback addresses
// (127.0.0.2, 127.0.0.3), which is how the gateway tells a TAS's calls
// from others.

const (
	alice = "+4790000001"
	bob   = "+4790000002"
	carol = "+4790000003"
)

// breakoutConfig lets TASes be reached over plain SIP (the phones speak
// UDP) and makes FALLBACK's no-answer time short.
const breakoutConfig = "registrations: {allow_plain_sip: true, fallback_timeout: 300ms}\n"

// register upserts a registration for number with tas as its TAS.
func (g *gateway) register(number string, rt registry.RouteType, tas *siptest.Phone, moPrefix, mtPrefix string) {
	g.t.Helper()
	_, err := g.app.Registry().Upsert(context.Background(), registry.Principal{Subject: "pbx-provider"}, registry.Registration{
		PhoneNumber: number, RouteType: rt, SIPURI: "sip:" + tas.Addr, MOPrefix: moPrefix, MTPrefix: mtPrefix,
	})
	if err != nil {
		g.t.Fatal(err)
	}
}

// breakoutScene is a gateway with one registration whose TAS is a phone on
// 127.0.0.2, a callee phone (the static route), a caller phone, and a
// context bounding the test's waits.
type breakoutScene struct {
	gw                  *gateway
	caller, callee, tas *siptest.Phone
	ctx                 context.Context
}

func newBreakoutScene(t *testing.T, number string, rt registry.RouteType, moPrefix, mtPrefix string) breakoutScene {
	t.Helper()
	sc := breakoutScene{callee: siptest.NewPhone(t, "udp"), tas: siptest.NewPhoneOn(t, "udp", "127.0.0.2")}
	sc.gw = startGateway(t, sc.callee.Addr, breakoutConfig)
	sc.gw.register(number, rt, sc.tas, moPrefix, mtPrefix)
	sc.caller = siptest.NewPhone(t, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	sc.ctx = ctx
	return sc
}

// txEnded reports whether an incoming call's INVITE transaction is over
// (after a CANCEL: sipgo answers it and the INVITE 487 by itself).
func txEnded(in *siptest.Incoming) func() bool {
	return func() bool {
		select {
		case <-in.Tx.Done():
			return true
		default:
			return false
		}
	}
}

// breakoutMetric reads callpath_breakout_calls_total for one series.
func (g *gateway) breakoutCalls(routeType, direction, outcome string) string {
	return g.metric(`callpath_breakout_calls_total{direction="` + direction + `",outcome="` + outcome + `",route_type="` + routeType + `"}`)
}

func sessionUUID(t *testing.T, msg *sip.Request) string {
	t.Helper()
	h := msg.GetHeader("Session-ID")
	if h == nil {
		t.Fatal("no Session-ID")
	}
	sid, err := b2bua.ParseSessionID(h.Value())
	if err != nil {
		t.Fatal(err)
	}
	return sid.Local
}

func maxForwardsOf(t *testing.T, req *sip.Request) int {
	t.Helper()
	mf := req.MaxForwards()
	if mf == nil {
		t.Fatal("no Max-Forwards")
	}
	return int(mf.Val())
}

// answer answers an incoming call 200 with an SDP of the phone's.
func answer(t *testing.T, p *siptest.Phone, in *siptest.Incoming) {
	t.Helper()
	if err := in.Respond(200, "OK", sdpFor(p, 1, "sendrecv")); err != nil {
		t.Fatal(err)
	}
}

// waitAnswered waits for the caller's 2xx and ACKs it.
func waitAnswered(ctx context.Context, t *testing.T, dlg *sipgo.DialogClientSession) {
	t.Helper()
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatalf("caller not answered: %v", err)
	}
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
}

// sendLeg3 has the TAS send a looped call back into the core, as DESIGN §3
// asks: the Session-ID of leg 2 unchanged, Max-Forwards lower (unless the
// test passes other values).
func sendLeg3(ctx context.Context, t *testing.T, gw *gateway, tas *siptest.Phone, leg2 *sip.Request, sessionID string, maxForwards int) *sipgo.DialogClientSession {
	t.Helper()
	mf := sip.MaxForwardsHeader(uint32(maxForwards))
	req := tas.InviteFrom(gw.udp(), leg2.From().Address.User, leg2.Recipient.User, sdpFor(tas, 1, "sendrecv"),
		sip.NewHeader("Session-ID", sessionID), &mf)
	dlg, err := tas.Dial(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return dlg
}

func TestLoopTASAnswersLeg2(t *testing.T) {
	sc := newBreakoutScene(t, bob, registry.RouteLoopMT, "", "00")
	gw, caller, tas := sc.gw, sc.caller, sc.tas

	sid := b2bua.NewSessionUUID()
	dlg, leg2 := dialAnswered(t, gw, caller, tas, gw.udp(), sip.NewHeader("Session-ID", sid+";remote="+b2bua.NullUUID))
	if got := leg2.Req.Recipient.User; got != "+004790000002" {
		t.Errorf("leg 2 Request-URI user %q, want the MT prefix after '+'", got)
	}
	if got := sessionUUID(t, leg2.Req); got != sid {
		t.Errorf("leg 2 Session-ID %s, want the caller's %s", got, sid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	tas.WaitRequest(5*time.Second, siptest.Method(sip.BYE))
	r := gw.cdrs(1)[0]
	if len(r.Legs) != 2 || !strings.Contains(r.Legs[1].Peer, "127.0.0.2") {
		t.Fatalf("legs %+v: want the incoming leg and leg 2 to the TAS only", r.Legs)
	}
	if got := gw.breakoutCalls("LOOP_MT", "MT", "answered_tas"); got != "1" {
		t.Fatalf("breakout calls answered by the TAS: %q", got)
	}
}

func TestLoopTASRejectsLeg2(t *testing.T) {
	sc := newBreakoutScene(t, alice, registry.RouteLoopMO, "", "")
	gw, caller, tas := sc.gw, sc.caller, sc.tas
	ctx := sc.ctx
	dlg, leg2 := ring(ctx, t, caller, tas, gw.udp())
	if err := leg2.Respond(603, "Decline", nil); err != nil {
		t.Fatal(err)
	}
	expectFinal(ctx, t, dlg, 603)
	r := gw.cdrs(1)[0]
	if r.FinalCode != 603 || len(r.Legs) != 2 {
		t.Fatalf("CDR %+v: want 603 with leg 2 only", r)
	}
	if got := gw.breakoutCalls("LOOP_MO", "MO", "rejected"); got != "1" {
		t.Fatalf("breakout calls rejected: %q", got)
	}
}

// The TAS sends the call back (leg 3) with the Session-ID of leg 2 and a
// lower Max-Forwards, keeping the prefixed number: the gateway routes it to
// the real destination (leg 4) without the prefix and without looping it
// again, and the Session-ID stays the same end to end.
func TestLoopLeg3ReachesTheDestination(t *testing.T) {
	sc := newBreakoutScene(t, alice, registry.RouteLoop, "00", "")
	gw, caller, callee, tas := sc.gw, sc.caller, sc.callee, sc.tas
	ctx := sc.ctx
	dlg, leg2 := ring(ctx, t, caller, tas, gw.udp())
	if got := leg2.Req.Recipient.User; got != "+004790000002" {
		t.Errorf("leg 2 Request-URI user %q, want the MO prefix after '+'", got)
	}
	sid := sessionUUID(t, leg2.Req)
	if got := gw.metric("callpath_breakout_loops_pending"); got != "1" {
		t.Fatalf("loops pending while leg 2 rings: %q", got)
	}
	leg3 := sendLeg3(ctx, t, gw, tas, leg2.Req, leg2.Req.GetHeader("Session-ID").Value(), maxForwardsOf(t, leg2.Req)-1)
	leg4 := callee.NextCall(5 * time.Second)
	if got := leg4.Req.Recipient.User; got != bob {
		t.Errorf("leg 4 Request-URI user %q, want %s", got, bob)
	}
	if got := sessionUUID(t, leg4.Req); got != sid {
		t.Errorf("leg 4 Session-ID %s, want %s", got, sid)
	}
	if got, limit := maxForwardsOf(t, leg4.Req), maxForwardsOf(t, leg2.Req)-1; got >= limit {
		t.Errorf("leg 4 Max-Forwards %d, want below leg 3's %d", got, limit)
	}
	answer(t, callee, leg4)
	waitAnswered(ctx, t, leg3)
	answer(t, tas, leg2)
	waitAnswered(ctx, t, dlg)

	if got := gw.metric(`callpath_breakout_loop_returns_total{route_type="LOOP"}`); got != "1" {
		t.Fatalf("loop returns: %q", got)
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	tas.WaitRequest(5*time.Second, siptest.Method(sip.BYE))
	if err := leg3.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	callee.WaitRequest(5*time.Second, siptest.Method(sip.BYE))
	eventually(t, 5*time.Second, "both calls ended", func() bool { return gw.app.ActiveCalls() == 0 })
	if got := gw.metric("callpath_breakout_loops_pending"); got != "0" {
		t.Fatalf("loops pending after the calls ended: %q", got)
	}
}

// A call from the TAS that does not match the waiting loop (another
// Session-ID, or a Max-Forwards not lower than leg 2's) is a new call from
// a TAS, which only INGRESS allows: 403.
func TestLeg3NotMatchingTheLoopIsANewCall(t *testing.T) {
	sc := newBreakoutScene(t, alice, registry.RouteLoop, "", "")
	gw, caller, tas := sc.gw, sc.caller, sc.tas
	ctx := sc.ctx
	dlg, leg2 := ring(ctx, t, caller, tas, gw.udp())
	mf := maxForwardsOf(t, leg2.Req)
	for name, leg3 := range map[string]*sipgo.DialogClientSession{
		"other Session-ID":        sendLeg3(ctx, t, gw, tas, leg2.Req, b2bua.NewSessionUUID(), mf-1),
		"Max-Forwards not lower":  sendLeg3(ctx, t, gw, tas, leg2.Req, leg2.Req.GetHeader("Session-ID").Value(), mf),
		"Max-Forwards way higher": sendLeg3(ctx, t, gw, tas, leg2.Req, leg2.Req.GetHeader("Session-ID").Value(), 70),
	} {
		t.Run(name, func(t *testing.T) { expectFinal(ctx, t, leg3, 403) })
	}
	if got := gw.metric(`callpath_breakout_tas_originated_calls_total{result="refused"}`); got != "3" {
		t.Fatalf("refused TAS calls: %q", got)
	}
	if err := leg2.Respond(486, "Busy Here", nil); err != nil {
		t.Fatal(err)
	}
	expectFinal(ctx, t, dlg, 486)
}

// Both parties have LOOP registrations with different TASes: the call
// passes the caller's TAS, then the callee's, then reaches the callee, and
// each TAS sees it once.
func TestLoopThroughBothPartiesTASes(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	tasA := siptest.NewPhoneOn(t, "udp", "127.0.0.2")
	tasB := siptest.NewPhoneOn(t, "udp", "127.0.0.3")
	gw := startGateway(t, callee.Addr, breakoutConfig)
	gw.register(alice, registry.RouteLoop, tasA, "", "")
	gw.register(bob, registry.RouteLoop, tasB, "", "")
	caller := siptest.NewPhone(t, "udp")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, leg2 := ring(ctx, t, caller, tasA, gw.udp())
	leg3 := sendLeg3(ctx, t, gw, tasA, leg2.Req, leg2.Req.GetHeader("Session-ID").Value(), maxForwardsOf(t, leg2.Req)-1)
	leg4 := tasB.NextCall(5 * time.Second)
	leg5 := sendLeg3(ctx, t, gw, tasB, leg4.Req, leg4.Req.GetHeader("Session-ID").Value(), maxForwardsOf(t, leg4.Req)-1)
	leg6 := callee.NextCall(5 * time.Second)
	if sessionUUID(t, leg6.Req) != sessionUUID(t, leg2.Req) {
		t.Error("Session-ID changed between leg 2 and the last leg")
	}
	answer(t, callee, leg6)
	waitAnswered(ctx, t, leg5)
	answer(t, tasB, leg4)
	waitAnswered(ctx, t, leg3)
	answer(t, tasA, leg2)
	waitAnswered(ctx, t, dlg)
	if got := gw.metric(`callpath_breakout_loop_returns_total{route_type="LOOP"}`); got != "2" {
		t.Fatalf("loop returns: %q", got)
	}
}

// FORK: the TAS and the destination both answer at once, before either
// rang (so neither can be cancelled first). One wins; the other gets ACK
// and BYE at once; the caller is answered once.
func TestForkRaceOfTwoAnswers(t *testing.T) {
	sc := newBreakoutScene(t, bob, registry.RouteFork, "", "")
	gw, caller, callee, tas := sc.gw, sc.caller, sc.callee, sc.tas
	ctx := sc.ctx
	dlg, err := caller.Dial(ctx, caller.Invite(gw.udp(), bob, sdpFor(caller, 1, "sendrecv")))
	if err != nil {
		t.Fatal(err)
	}
	atTAS, atCallee := tas.NextCall(5*time.Second), callee.NextCall(5*time.Second)
	if sessionUUID(t, atTAS.Req) != sessionUUID(t, atCallee.Req) {
		t.Error("the forks carry different Session-IDs")
	}
	answer(t, tas, atTAS)
	answer(t, callee, atCallee)
	waitAnswered(ctx, t, dlg)

	byes := func(p *siptest.Phone) int {
		n := 0
		for _, r := range p.Received() {
			if r.Method == sip.BYE {
				n++
			}
		}
		return n
	}
	eventually(t, 5*time.Second, "the losing fork hung up", func() bool { return byes(tas)+byes(callee) == 1 })
	winner, outcome := callee, "answered_destination"
	if byes(callee) == 1 {
		winner, outcome = tas, "answered_tas"
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the winner hung up", func() bool { return byes(winner) == 1 })
	if byes(tas) != 1 || byes(callee) != 1 {
		t.Fatalf("BYEs: TAS %d, callee %d; want one each", byes(tas), byes(callee))
	}
	if got := gw.breakoutCalls("FORK", "MT", outcome); got != "1" {
		t.Fatalf("fork outcome %s: %q", outcome, got)
	}
	if r := gw.cdrs(1)[0]; len(r.Legs) != 3 {
		t.Fatalf("CDR legs %+v, want incoming + two forks", r.Legs)
	}
}

// FORK: the destination answers while the TAS rings; the TAS's INVITE is
// cancelled.
func TestForkCancelsTheRingingBranch(t *testing.T) {
	sc := newBreakoutScene(t, alice, registry.RouteFork, "", "")
	gw, caller, callee, tas := sc.gw, sc.caller, sc.callee, sc.tas
	ctx := sc.ctx
	dlg, err := caller.Dial(ctx, caller.Invite(gw.udp(), bob, sdpFor(caller, 1, "sendrecv")))
	if err != nil {
		t.Fatal(err)
	}
	atTAS, atCallee := tas.NextCall(5*time.Second), callee.NextCall(5*time.Second)
	if err := atTAS.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	answer(t, callee, atCallee)
	waitAnswered(ctx, t, dlg)
	eventually(t, 5*time.Second, "TAS INVITE transaction cancelled", txEnded(atTAS))
}

// FALLBACK: the destination is busy, the call goes to the TAS (with the
// callee's MT prefix), which answers.
func TestFallbackOnBusy(t *testing.T) {
	sc := newBreakoutScene(t, bob, registry.RouteFallback, "", "99")
	gw, caller, callee, tas := sc.gw, sc.caller, sc.callee, sc.tas
	ctx := sc.ctx
	dlg, atCallee := ring(ctx, t, caller, callee, gw.udp())
	if err := atCallee.Respond(486, "Busy Here", nil); err != nil {
		t.Fatal(err)
	}
	voicemail := tas.NextCall(5 * time.Second)
	if got := voicemail.Req.Recipient.User; got != "+994790000002" {
		t.Errorf("fallback Request-URI user %q, want the MT prefix", got)
	}
	answer(t, tas, voicemail)
	waitAnswered(ctx, t, dlg)
	if got := gw.breakoutCalls("FALLBACK", "MT", "answered_tas"); got != "" {
		t.Fatalf("counted before the call ended: %q", got)
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	tas.WaitRequest(5*time.Second, siptest.Method(sip.BYE))
	eventually(t, 5*time.Second, "fallback counted", func() bool { return gw.breakoutCalls("FALLBACK", "MT", "answered_tas") == "1" })
}

// FALLBACK: the destination rings past the fallback time (300 ms here); it
// gets CANCEL and the TAS the call.
func TestFallbackOnNoAnswer(t *testing.T) {
	sc := newBreakoutScene(t, bob, registry.RouteFallback, "", "")
	gw, caller, callee, tas := sc.gw, sc.caller, sc.callee, sc.tas
	ctx := sc.ctx
	dlg, atCallee := ring(ctx, t, caller, callee, gw.udp())
	if err := atCallee.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	voicemail := tas.NextCall(5 * time.Second)
	eventually(t, 5*time.Second, "destination's INVITE cancelled", txEnded(atCallee))
	answer(t, tas, voicemail)
	waitAnswered(ctx, t, dlg)
}

// INGRESS: the TAS of a number's INGRESS registration may call it; another
// registered TAS may not.
func TestIngressFromAllowedAndRefusedSource(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	pbx := siptest.NewPhoneOn(t, "udp", "127.0.0.2")
	other := siptest.NewPhoneOn(t, "udp", "127.0.0.3")
	gw := startGateway(t, callee.Addr, breakoutConfig)
	gw.register(bob, registry.RouteIngress, pbx, "", "")
	gw.register(carol, registry.RouteLoop, other, "", "") // makes 127.0.0.3 a TAS

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	allowed, err := pbx.Dial(ctx, pbx.InviteFrom(gw.udp(), "+4722000000", bob, sdpFor(pbx, 1, "sendrecv")))
	if err != nil {
		t.Fatal(err)
	}
	in := callee.NextCall(5 * time.Second)
	if in.Req.Recipient.User != bob {
		t.Fatalf("callee got %s", in.Req.Recipient.User)
	}
	answer(t, callee, in)
	waitAnswered(ctx, t, allowed)

	refused, err := other.Dial(ctx, other.InviteFrom(gw.udp(), "+4722000000", bob, sdpFor(other, 1, "sendrecv")))
	if err != nil {
		t.Fatal(err)
	}
	expectFinal(ctx, t, refused, 403)
	if got := gw.metric(`callpath_breakout_tas_originated_calls_total{result="allowed"}`); got != "1" {
		t.Fatalf("allowed TAS calls: %q", got)
	}
}
