package routing_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"callpath/registry"
	"callpath/routing"
	"callpath/store"
)

const (
	alice = "+4790000001" // caller
	bob   = "+4790000002" // callee
	tasA  = "sip:127.0.0.11:5060"
	tasB  = "sip:127.0.0.12:5060"
	dest  = "sip:core.example.net"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// newBreakout gives a planner over a real registry (SQLite in the test's
// directory) with alice's and bob's registrations as given ("" for none).
func newBreakout(t *testing.T, aliceType, bobType registry.RouteType, c *clock) *routing.Breakout {
	t.Helper()
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "db"), store.Options{Logger: logrus.NewEntry(quiet)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	reg, err := registry.New(context.Background(), registry.Config{TTL: time.Hour, AllowPlainSIP: true}, db, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	p := registry.Principal{Subject: "tas-provider"}
	if aliceType != 0 {
		if _, err := reg.Upsert(context.Background(), p, registry.Registration{PhoneNumber: alice, RouteType: aliceType, SIPURI: tasA, MOPrefix: "00", MTPrefix: "11"}); err != nil {
			t.Fatal(err)
		}
	}
	if bobType != 0 {
		if _, err := reg.Upsert(context.Background(), p, registry.Registration{PhoneNumber: bob, RouteType: bobType, SIPURI: tasB, MOPrefix: "22", MTPrefix: "33"}); err != nil {
			t.Fatal(err)
		}
	}
	return &routing.Breakout{
		Destinations:    routing.NewStaticTable(nil, dest),
		Registrations:   reg,
		FallbackTimeout: 30 * time.Second,
	}
}

// describe writes a plan compactly: branches joined by " | ", each as
// kind:target:user, "loop>STAGE" for loops, "else(...)" for fallbacks.
func describe(p routing.Plan) string {
	if p.Action == routing.ActionReject {
		return fmt.Sprintf("reject %d", p.Code)
	}
	var parts []string
	for _, b := range p.Branches {
		parts = append(parts, branch(b))
	}
	return strings.Join(parts, " | ")
}

func branch(b routing.Branch) string {
	s := "dest:" + b.User
	if b.Kind == routing.ToTAS {
		name := "A"
		if b.Target.URI == tasB {
			name = "B"
		}
		s = "tas" + name + ":" + b.User
	}
	if b.IsLoop() {
		s += fmt.Sprintf(" loop>%d", b.ReturnStage)
	}
	if b.Fallback != nil {
		s += " else(" + branch(*b.Fallback) + ")"
	}
	return s
}

// Every route type, for the caller, the callee or both, new calls and the
// legs a TAS sends back, and expired registrations.
func TestBreakoutPlans(t *testing.T) {
	const (
		none     = registry.RouteUnspecified
		loop     = registry.RouteLoop
		loopMO   = registry.RouteLoopMO
		loopMT   = registry.RouteLoopMT
		fork     = registry.RouteFork
		fallback = registry.RouteFallback
		ingress  = registry.RouteIngress
	)
	const plainDest = "dest:" + bob
	cases := []struct {
		alice, bob registry.RouteType
		stage      routing.Stage
		fromTAS    string
		want       string
	}{
		{none, none, routing.StageMO, "", plainDest},
		// The caller's registration (MO).
		{loop, none, routing.StageMO, "", "tasA:+004790000002 loop>1"},
		{loopMO, none, routing.StageMO, "", "tasA:+004790000002 loop>1"},
		{loopMT, none, routing.StageMO, "", plainDest},
		{fork, none, routing.StageMO, "", "tasA:+004790000002 | " + plainDest},
		{fallback, none, routing.StageMO, "", plainDest},
		{ingress, none, routing.StageMO, "", plainDest},
		// The callee's registration (MT).
		{none, loop, routing.StageMO, "", "tasB:+334790000002 loop>2"},
		{none, loopMO, routing.StageMO, "", plainDest},
		{none, loopMT, routing.StageMO, "", "tasB:+334790000002 loop>2"},
		{none, fork, routing.StageMO, "", "tasB:+334790000002 | " + plainDest},
		{none, fallback, routing.StageMO, "", plainDest + " else(tasB:+334790000002)"},
		{none, ingress, routing.StageMO, "", plainDest},
		// Both: MO acts first, with the caller's prefix toward every TAS.
		{loop, loop, routing.StageMO, "", "tasA:+004790000002 loop>1"},
		{fork, loop, routing.StageMO, "", "tasA:+004790000002 | tasB:+004790000002 loop>2"},
		{fork, fork, routing.StageMO, "", "tasA:+004790000002 | tasB:+004790000002 | " + plainDest},
		{fork, fallback, routing.StageMO, "", "tasA:+004790000002 | " + plainDest + " else(tasB:+004790000002)"},
		{loopMT, loopMT, routing.StageMO, "", "tasB:+004790000002 loop>2"},
		// Leg 3 after the caller's loop: only the callee's registration.
		{loop, none, routing.StageMT, "", plainDest},
		{loop, loop, routing.StageMT, "", "tasB:+004790000002 loop>2"},
		{loop, fallback, routing.StageMT, "", plainDest + " else(tasB:+004790000002)"},
		// Leg 3 after the callee's loop: straight to the destination.
		{none, loop, routing.StageDone, "", plainDest},
		{loop, loop, routing.StageDone, "", plainDest},
		// INGRESS: a TAS may call a number registered to it, nothing else.
		{none, ingress, routing.StageMO, tasB, plainDest},
		{none, ingress, routing.StageMO, tasA, "reject 403"},
		{none, none, routing.StageMO, tasA, "reject 403"},
		{none, loop, routing.StageMO, tasB, "reject 403"},
	}
	for _, tc := range cases {
		name := fmt.Sprintf("alice=%v/bob=%v/stage=%d/from=%q", tc.alice, tc.bob, tc.stage, tc.fromTAS)
		t.Run(name, func(t *testing.T) {
			c := &clock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
			b := newBreakout(t, tc.alice, tc.bob, c)
			call := routing.BreakoutCall{Call: routing.Call{From: alice, To: bob}, Stage: tc.stage}
			if tc.fromTAS != "" {
				call.FromTAS = []string{tc.fromTAS}
			}
			if got := describe(b.Plan(call)); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			// An hour later every registration has expired: plain routing.
			c.mu.Lock()
			c.now = c.now.Add(time.Hour + time.Second)
			c.mu.Unlock()
			want := plainDest
			if tc.fromTAS != "" {
				want = "reject 403"
			}
			if got := describe(b.Plan(call)); got != want {
				t.Fatalf("after expiry: got %s, want %s", got, want)
			}
		})
	}
}

// Explain names the registrations that apply and every leg, fallbacks
// included.
func TestExplain(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	b := newBreakout(t, registry.RouteLoop, registry.RouteFallback, c)
	e := b.Explain(alice, bob)
	if len(e.Registrations) != 2 || !strings.Contains(e.Registrations[0], "caller (MO) +4790000001: LOOP to "+tasA) {
		t.Fatalf("registrations: %q", e.Registrations)
	}
	if len(e.Legs) != 1 || !strings.Contains(e.Legs[0], "leg 2: INVITE sip:+004790000002@… to "+tasA+" (MO LOOP TAS; when it sends the call back as leg 3, the callee's registration is applied next)") {
		t.Fatalf("legs: %q", e.Legs)
	}
	b = newBreakout(t, 0, registry.RouteFallback, c)
	e = b.Explain(alice, bob)
	if len(e.Legs) != 1 || !strings.Contains(e.Legs[0], "(destination); on 486/600 or no answer within 30s: leg 3 (fallback): INVITE sip:+334790000002@… to "+tasB) {
		t.Fatalf("fallback legs: %q", e.Legs)
	}
}

type deviceNumbers map[string]bool

func (s deviceNumbers) HasDevice(n string) bool { return s[n] }

// A FORK registration of a number with a live WebRTC device rings its TAS
// and the WebRTC gateway together (the browser is the destination).
func TestForkRingsTASAndDevices(t *testing.T) {
	b := newBreakout(t, 0, registry.RouteFork, &clock{now: time.Now()})
	b.Destinations = routing.DevicesFirst{Devices: deviceNumbers{bob: true}, Gateway: "sip:webrtc@127.0.0.1:5070", Next: b.Destinations}
	plan := b.Plan(routing.BreakoutCall{Call: routing.Call{From: alice, To: bob}, Stage: routing.StageMO})
	if got, want := describe(plan), "tasB:+33"+bob[1:]+" | dest:"+bob; got != want {
		t.Fatalf("plan %s, want %s", got, want)
	}
	if uri := plan.Branches[1].Target.URI; uri != "sip:webrtc@127.0.0.1:5070" {
		t.Fatalf("the destination is %s, not the WebRTC gateway", uri)
	}
}
