package webrtc_test

import (
	"strings"
	"testing"
	"time"

	"callpath/internal/mediatest"
	"callpath/webrtc"
	"callpath/webrtc/codec"
)

// A browser offering like Chrome (Opus first) calls a PCMU phone: the
// call is relayed, tones and digits cross both ways, and the browser gets
// only what this build can carry.
func TestBrowserCallsPhonePCMURelay(t *testing.T) {
	mediatest.CheckGoroutines(t)
	m := newRecordingMetrics()
	eng := newEngine(t, m, nil)
	ev := newCallEvents()
	s := newSession(t, eng, ev)
	browser := mediatest.NewBrowser(t, "opus", "PCMU", "PCMA")
	phone := mediatest.NewPhone(t, "PCMU")

	sipOffer, webAnswer := browserCallsPhone(t, s, browser, phone, "PCMU")
	if strings.Contains(sipOffer, "opus") || !strings.Contains(sipOffer, "telephone-event/8000") {
		t.Errorf("SIP offer:\n%s", sipOffer)
	}
	if strings.Contains(webAnswer, "opus") || strings.Contains(webAnswer, "telephone-event/48000") || !strings.Contains(webAnswer, "telephone-event/8000") {
		t.Errorf("the browser must get PCMU with telephone-event/8000 only:\n%s", webAnswer)
	}
	if info := s.Info(); info.Mode != webrtc.ModeRelay || info.Codec != "PCMU" {
		t.Fatalf("info %+v", info)
	}
	checkTonesBothWays(t, browser, phone)
	checkDigitsBothWays(t, browser, phone, ev)
	if !phone.SawSource(s.Info().SIPLocal) {
		t.Errorf("the phone got media from elsewhere than the SDP's %v", s.Info().SIPLocal)
	}
	if m.get(m.started, "PCMU/relay") != 1 {
		t.Errorf("sessions started: %v", m.started)
	}
}

// A PCMU phone calls a browser: the browser is offered the phone's codec
// first and never Opus in a build without it; relayed both ways.
func TestPhoneCallsBrowserPCMURelay(t *testing.T) {
	mediatest.CheckGoroutines(t)
	eng := newEngine(t, nil, nil)
	ev := newCallEvents()
	s := newSession(t, eng, ev)
	browser := mediatest.NewBrowser(t, "opus", "PCMU", "PCMA")
	phone := mediatest.NewPhone(t, "PCMU")

	webOffer, sipAnswer := phoneCallsBrowser(t, s, browser, phone, "PCMU")
	if !codec.OpusAvailable && strings.Contains(webOffer, "opus") {
		t.Errorf("a build without opus offered it:\n%s", webOffer)
	}
	if !strings.Contains(sipAnswer, "m=audio") || !strings.Contains(sipAnswer, "telephone-event/8000") {
		t.Errorf("SIP answer:\n%s", sipAnswer)
	}
	if info := s.Info(); info.Mode != webrtc.ModeRelay || info.Codec != "PCMU" {
		t.Fatalf("info %+v", info)
	}
	checkTonesBothWays(t, browser, phone)
	checkDigitsBothWays(t, browser, phone, ev)
}

// A browser that has only µ-law calls an A-law phone (a European TAS that
// takes nothing else): the call is relayed, each payload converted to the
// other law on the way, so silence stays silence, tones and digits cross,
// and the metric names both laws.
func TestBrowserCallsPhoneAcrossG711Laws(t *testing.T) {
	mediatest.CheckGoroutines(t)
	m := newRecordingMetrics()
	eng := newEngine(t, m, nil)
	ev := newCallEvents()
	s := newSession(t, eng, ev)
	browser := mediatest.NewBrowser(t, "PCMU")
	phone := mediatest.NewPhone(t, "PCMA")

	_, webAnswer := browserCallsPhone(t, s, browser, phone, "PCMA")
	if !strings.Contains(webAnswer, "PCMU/8000") || strings.Contains(webAnswer, "PCMA") {
		t.Errorf("the browser must keep PCMU:\n%s", webAnswer)
	}
	if info := s.Info(); info.Mode != webrtc.ModeRelay || info.Codec != "PCMU/PCMA" {
		t.Fatalf("info %+v", info)
	}
	mediatest.Eventually(t, 10*time.Second, phone.Ear.Silent, "the phone hears the browser's silence")
	mediatest.Eventually(t, 10*time.Second, browser.Ear.Silent, "the browser hears the phone's silence")
	checkTonesBothWays(t, browser, phone)
	checkDigitsBothWays(t, browser, phone, ev)
	if m.get(m.started, "PCMU/PCMA/relay") != 1 {
		t.Errorf("sessions started: %v", m.started)
	}
}
