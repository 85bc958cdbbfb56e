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

// A browser calls a TAS that wants "WebRTC style" media: the SIP leg
// offers DTLS-SRTP, the TAS answers setup:active and runs the handshake
// against the offer's fingerprint; tones and digits cross both ways, all
// SRTP on the SIP leg.
func TestBrowserCallsTASOverDTLSSRTP(t *testing.T) {
	mediatest.CheckGoroutines(t)
	eng := newEngine(t, nil, nil)
	ev := newCallEvents()
	opts := ev.options(t.Name())
	opts.SIPSecure = true
	s, err := eng.NewSession(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	browser := mediatest.NewBrowser(t, "PCMU")
	tas := mediatest.NewSecurePhone(t, "PCMU", "active")
	ctx := context.Background()

	sipOffer, err := s.OfferFromWebRTC(ctx, browser.Offer(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"m=audio", "UDP/TLS/RTP/SAVP 0", "a=fingerprint:sha-256 ", "a=setup:actpass", "a=rtcp-mux"} {
		if !strings.Contains(sipOffer, want) {
			t.Fatalf("SIP offer lacks %q:\n%s", want, sipOffer)
		}
	}
	remote, err := mediatest.RemoteFrom(sipOffer, "PCMU")
	if err != nil {
		t.Fatal(err)
	}
	webAnswer, err := s.AnswerFromSIP(ctx, tas.SDP())
	if err != nil {
		t.Fatal(err)
	}
	browser.Accept(t, webAnswer)
	browser.WaitConnected(t, 10*time.Second)
	tas.Start(remote)
	if err := tas.Handshake(sipOffer, remote); err != nil {
		t.Fatal(err)
	}
	checkTonesBothWays(t, browser, tas)
	checkDigitsBothWays(t, browser, tas, ev)
}

// A TAS offering DTLS-SRTP (setup:actpass) calls a browser: the plane
// answers setup:active and starts the handshake itself.
func TestTASCallsBrowserOverDTLSSRTP(t *testing.T) {
	mediatest.CheckGoroutines(t)
	eng := newEngine(t, nil, nil)
	ev := newCallEvents()
	s := newSession(t, eng, ev)
	browser := mediatest.NewBrowser(t, "PCMA")
	tas := mediatest.NewSecurePhone(t, "PCMA", "actpass")
	ctx := context.Background()

	webOffer, err := s.OfferFromSIP(ctx, tas.SDP())
	if err != nil {
		t.Fatal(err)
	}
	sipAnswer, err := s.AnswerFromWebRTC(ctx, browser.Answer(t, webOffer))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"UDP/TLS/RTP/SAVP", "a=fingerprint:sha-256 ", "a=setup:active", "a=rtcp-mux"} {
		if !strings.Contains(sipAnswer, want) {
			t.Fatalf("SIP answer lacks %q:\n%s", want, sipAnswer)
		}
	}
	remote, err := mediatest.RemoteFrom(sipAnswer, "PCMA")
	if err != nil {
		t.Fatal(err)
	}
	tas.Start(remote)
	if err := tas.Handshake(sipAnswer, remote); err != nil {
		t.Fatal(err)
	}
	browser.WaitConnected(t, 10*time.Second)
	checkTonesBothWays(t, browser, tas)
}

// A TAS whose certificate is not the one its SDP's fingerprint names
// fails the handshake: the session ends with ErrDTLSFailed, and the
// imposter gets no keys.
func TestDTLSSRTPFingerprintMismatchEndsTheCall(t *testing.T) {
	mediatest.CheckGoroutines(t)
	m := newRecordingMetrics()
	eng := newEngine(t, m, nil)
	ev := newCallEvents()
	opts := ev.options(t.Name())
	opts.SIPSecure = true
	s, err := eng.NewSession(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	browser := mediatest.NewBrowser(t, "PCMU")
	announced := mediatest.NewSecurePhone(t, "PCMU", "active")
	imposter := mediatest.NewSecurePhone(t, "PCMU", "active")
	ctx := context.Background()
	sipOffer, err := s.OfferFromWebRTC(ctx, browser.Offer(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AnswerFromSIP(ctx, announced.SDP()); err != nil {
		t.Fatal(err)
	}
	remote, _ := mediatest.RemoteFrom(sipOffer, "PCMU")
	if err := imposter.Handshake(sipOffer, remote); err == nil {
		t.Fatal("the imposter completed a handshake")
	}
	select {
	case reason := <-ev.ended:
		if !errors.Is(reason, webrtc.ErrDTLSFailed) {
			t.Fatalf("ended with %v", reason)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the session did not end")
	}
	mediatest.Eventually(t, 5*time.Second, func() (bool, string) {
		return m.get(m.setup, "sip_dtls") == 1, "not counted"
	}, "the failure is counted")
}
