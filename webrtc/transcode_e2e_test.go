//go:build opus

package webrtc_test

import (
	"strings"
	"testing"

	"callpath/internal/mediatest"
	"callpath/webrtc"
)

// A browser speaking only Opus calls a PCMU phone: the plane offers the
// phone G.711, transcodes both ways, and tones and digits cross; the
// browser is answered telephone-event/48000 only (the clock of Opus).
func TestBrowserCallsPhoneOpusTranscode(t *testing.T) {
	mediatest.CheckGoroutines(t)
	m := newRecordingMetrics()
	eng := newEngine(t, m, nil)
	ev := newCallEvents()
	s := newSession(t, eng, ev)
	browser := mediatest.NewBrowser(t, "opus")
	phone := mediatest.NewPhone(t, "PCMU")

	sipOffer, webAnswer := browserCallsPhone(t, s, browser, phone, "PCMU")
	if strings.Contains(sipOffer, "opus") {
		t.Errorf("Opus offered to the SIP side:\n%s", sipOffer)
	}
	if !strings.Contains(webAnswer, "opus/48000") || !strings.Contains(webAnswer, "telephone-event/48000") || strings.Contains(webAnswer, "telephone-event/8000") {
		t.Errorf("the browser must get Opus with telephone-event/48000 only:\n%s", webAnswer)
	}
	if info := s.Info(); info.Mode != webrtc.ModeTranscode || info.Codec != "opus/PCMU" {
		t.Fatalf("info %+v", info)
	}
	checkTonesBothWays(t, browser, phone)
	checkDigitsBothWays(t, browser, phone, ev)
	if m.get(m.transcod, "to_sip") == 0 || m.get(m.transcod, "to_webrtc") == 0 {
		t.Errorf("transcode times not recorded: %v", m.transcod)
	}
}

// A PCMA phone calls a browser that takes only Opus: transcoded.
func TestPhoneCallsBrowserOpusTranscode(t *testing.T) {
	mediatest.CheckGoroutines(t)
	eng := newEngine(t, nil, nil)
	ev := newCallEvents()
	s := newSession(t, eng, ev)
	browser := mediatest.NewBrowser(t, "opus")
	phone := mediatest.NewPhone(t, "PCMA")

	webOffer, _ := phoneCallsBrowser(t, s, browser, phone, "PCMA")
	if !strings.Contains(webOffer, "PCMA/8000") || !strings.Contains(webOffer, "opus/48000") {
		t.Errorf("the browser should be offered the phone's PCMA and Opus:\n%s", webOffer)
	}
	if info := s.Info(); info.Mode != webrtc.ModeTranscode || info.Codec != "opus/PCMA" {
		t.Fatalf("info %+v", info)
	}
	checkTonesBothWays(t, browser, phone)
	checkDigitsBothWays(t, browser, phone, ev)
}

// With Opus available, a browser that also has PCMU is still relayed: the
// plane prefers the cheaper path.
func TestOpusBuildStillRelaysWhenItCan(t *testing.T) {
	eng := newEngine(t, nil, nil)
	s := newSession(t, eng, newCallEvents())
	browser := mediatest.NewBrowser(t, "opus", "PCMU")
	phone := mediatest.NewPhone(t, "PCMU")
	browserCallsPhone(t, s, browser, phone, "PCMU")
	if info := s.Info(); info.Mode != webrtc.ModeRelay {
		t.Fatalf("info %+v", info)
	}
}
