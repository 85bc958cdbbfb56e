package webrtc_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"callpath/internal/mediatest"
	"callpath/webrtc"
)

// stopsGrowing waits until the ear's packet count holds still for 300 ms:
// nothing reaches it any more.
func stopsGrowing(t *testing.T, name string, ear *mediatest.Ear) {
	t.Helper()
	last, since := ear.Packets(), time.Now()
	mediatest.Eventually(t, 5*time.Second, func() (bool, string) {
		if n := ear.Packets(); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) > 300*time.Millisecond, "still receiving"
	}, "%s stops receiving", name)
}

// grows waits until the ear receives more packets than now.
func grows(t *testing.T, name string, ear *mediatest.Ear) {
	t.Helper()
	before := ear.Packets()
	mediatest.Eventually(t, 5*time.Second, func() (bool, string) { return ear.Packets() > before+10, "no new packets" }, "%s receives again", name)
}

// The phone holds (re-INVITE a=sendonly, playing its tone as music on
// hold): the plane answers recvonly, stops sending to the phone, keeps
// the phone's audio flowing to the browser; resume restores both ways.
func TestPhoneHoldsAndResumes(t *testing.T) {
	mediatest.CheckGoroutines(t)
	eng := newEngine(t, nil, nil)
	s := newSession(t, eng, newCallEvents())
	browser := mediatest.NewBrowser(t, "PCMU")
	phone := mediatest.NewPhone(t, "PCMU")
	browserCallsPhone(t, s, browser, phone, "PCMU")
	browser.ToneOn(true)
	phone.ToneOn(true)
	phone.Ear.WaitTone(t, "the phone", 1000, 10*time.Second)
	ctx := context.Background()

	answer, err := s.UpdateFromSIP(ctx, phone.SDPWith("sendonly", 2))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(answer, "a=recvonly") {
		t.Errorf("hold answered:\n%s", answer)
	}
	if info := s.Info(); info.ToSIP || !info.ToWebRTC {
		t.Fatalf("on hold: %+v", info)
	}
	stopsGrowing(t, "the held phone", &phone.Ear)
	browser.Ear.WaitTone(t, "the browser (music on hold)", 1000, 5*time.Second)

	answer, err = s.UpdateFromSIP(ctx, phone.SDPWith("sendrecv", 3))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(answer, "a=sendrecv") {
		t.Errorf("resume answered:\n%s", answer)
	}
	grows(t, "the resumed phone", &phone.Ear)
	phone.Ear.WaitTone(t, "the resumed phone", 1000, 5*time.Second)

	// A re-offer in the other G.711 law is taken (the relay converts it);
	// one with no G.711 at all is refused and the call goes on as it was.
	if answer, err := s.UpdateFromSIP(ctx, mediatest.NewPhone(t, "PCMA").SDPWith("sendrecv", 4)); err != nil || !strings.Contains(answer, "RTP/AVP 8") {
		t.Errorf("a re-offer switching a relayed call to PCMA: %v\n%s", err, answer)
	}
	if _, err := s.UpdateFromSIP(ctx, g729Offer); !errors.Is(err, webrtc.ErrNoCommonCodec) {
		t.Errorf("a G.729 re-offer: %v", err)
	}
}

// The browser holds (renegotiates a=sendonly): its answer says recvonly,
// nothing goes to the browser, its audio still reaches the phone; the
// plane can also hold the phone for it with a re-INVITE of its own.
func TestBrowserHoldsAndThePlaneHoldsThePhone(t *testing.T) {
	mediatest.CheckGoroutines(t)
	eng := newEngine(t, nil, nil)
	s := newSession(t, eng, newCallEvents())
	browser := mediatest.NewBrowser(t, "PCMU")
	phone := mediatest.NewPhone(t, "PCMU")
	browserCallsPhone(t, s, browser, phone, "PCMU")
	browser.ToneOn(true)
	phone.ToneOn(true)
	browser.Ear.WaitTone(t, "the browser", 1000, 10*time.Second)
	ctx := context.Background()

	answer, err := s.UpdateFromWebRTC(ctx, browser.Reoffer(t, "sendonly"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(answer, "a=recvonly") {
		t.Errorf("the browser's hold answered:\n%s", answer)
	}
	browser.Accept(t, answer)
	if info := s.Info(); !info.ToSIP || info.ToWebRTC {
		t.Fatalf("browser on hold: %+v", info)
	}
	stopsGrowing(t, "the holding browser", &browser.Ear)
	phone.Ear.WaitTone(t, "the phone", 1000, 5*time.Second)

	reoffer, err := s.SIPReoffer(ctx, webrtc.SendOnly)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reoffer, "a=sendonly") || !strings.Contains(reoffer, "PCMU/8000") {
		t.Errorf("re-offer:\n%s", reoffer)
	}
	if err := s.ApplySIPAnswer(ctx, phone.SDPWith("recvonly", 2)); err != nil {
		t.Fatal(err)
	}
	if info := s.Info(); !info.ToSIP || info.ToWebRTC {
		t.Fatalf("both held: %+v", info)
	}

	answer, err = s.UpdateFromWebRTC(ctx, browser.Reoffer(t, "sendrecv"))
	if err != nil {
		t.Fatal(err)
	}
	browser.Accept(t, answer)
	if _, err := s.SIPReoffer(ctx, webrtc.SendRecv); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplySIPAnswer(ctx, phone.SDPWith("sendrecv", 3)); err != nil {
		t.Fatal(err)
	}
	grows(t, "the resumed browser", &browser.Ear)
	browser.Ear.WaitTone(t, "the resumed browser", 1000, 5*time.Second)
}
