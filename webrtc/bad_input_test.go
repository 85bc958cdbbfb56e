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

const g729Offer = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 4000 RTP/AVP 18 101\r\na=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n"

// Offers and answers the plane cannot use fail with the typed errors the
// SIP and CAMARA layers map (400, 488), and leave the session usable for
// nothing worse than a Close.
func TestBadSDPIsRefusedWithTypedErrors(t *testing.T) {
	mediatest.CheckGoroutines(t)
	eng := newEngine(t, nil, nil)
	ctx := context.Background()
	fresh := func() *webrtc.Session { return newSession(t, eng, newCallEvents()) }

	for name, c := range map[string]struct {
		call func(*webrtc.Session) error
		want error
	}{
		"garbage browser offer":     {func(s *webrtc.Session) error { _, err := s.OfferFromWebRTC(ctx, "\x00garbage"); return err }, webrtc.ErrBadSDP},
		"garbage SIP offer":         {func(s *webrtc.Session) error { _, err := s.OfferFromSIP(ctx, "v=0\r\nnonsense"); return err }, webrtc.ErrBadSDP},
		"SIP offer with only G.729": {func(s *webrtc.Session) error { _, err := s.OfferFromSIP(ctx, g729Offer); return err }, webrtc.ErrNoCommonCodec},
		"browser offer with only G.722": {func(s *webrtc.Session) error {
			_, err := s.OfferFromWebRTC(ctx, strings.Replace(g729Offer, "18 101", "9 101", 1))
			return err
		}, webrtc.ErrNoCommonCodec},
		"SIP offer without audio": {func(s *webrtc.Session) error {
			_, err := s.OfferFromSIP(ctx, strings.Replace(g729Offer, "m=audio", "m=video", 1))
			return err
		}, webrtc.ErrNoCommonCodec},
		"SDES SRTP offer": {func(s *webrtc.Session) error {
			_, err := s.OfferFromSIP(ctx, strings.Replace(strings.Replace(g729Offer, "RTP/AVP 18", "RTP/SAVP 0", 1), "rtpmap:18 G729", "rtpmap:0 PCMU", 1))
			return err
		}, webrtc.ErrUnsupportedTransport},
		"answer before offer": {func(s *webrtc.Session) error { _, err := s.AnswerFromSIP(ctx, g729Offer); return err }, webrtc.ErrCallOrder},
		"second offer": {func(s *webrtc.Session) error {
			browser := mediatest.NewBrowser(t, "PCMU")
			offer := browser.Offer(t)
			if _, err := s.OfferFromWebRTC(ctx, offer); err != nil {
				return err
			}
			_, err := s.OfferFromWebRTC(ctx, offer)
			return err
		}, webrtc.ErrCallOrder},
	} {
		t.Run(name, func(t *testing.T) {
			if err := c.call(fresh()); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// The SIP side answers with a codec the browser leg cannot carry: 488 for
// the caller. A PCMU-only browser's call offers PCMA too (relayed through
// a law conversion), unless the configuration leaves PCMA out: then a
// PCMA answer is refused as well.
func TestSIPAnswerWithoutCommonCodec(t *testing.T) {
	mediatest.CheckGoroutines(t)
	ctx := context.Background()
	browser := mediatest.NewBrowser(t, "PCMU")
	s := newSession(t, newEngine(t, nil, nil), newCallEvents())
	sipOffer, err := s.OfferFromWebRTC(ctx, browser.Offer(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sipOffer, "RTP/AVP 0 8 ") {
		t.Errorf("a PCMU-only browser's call does not offer PCMU then PCMA:\n%s", sipOffer)
	}
	if _, err := s.AnswerFromSIP(ctx, g729Offer); !errors.Is(err, webrtc.ErrNoCommonCodec) {
		t.Fatalf("G.729 answer: %v", err)
	}

	muOnly := newSession(t, newEngine(t, nil, func(c *webrtc.Config) { c.Codecs = []string{"PCMU"} }), newCallEvents())
	sipOffer, err = muOnly.OfferFromWebRTC(ctx, mediatest.NewBrowser(t, "PCMU").Offer(t))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sipOffer, "PCMA") {
		t.Errorf("PCMA offered although the configuration leaves it out:\n%s", sipOffer)
	}
	if _, err := muOnly.AnswerFromSIP(ctx, mediatest.NewPhone(t, "PCMA").SDP()); !errors.Is(err, webrtc.ErrNoCommonCodec) {
		t.Fatalf("PCMA answer to a PCMU offer: %v", err)
	}
}

// A browser that never completes ICE (it never applies the answer) makes
// the session end by itself after the connect timeout, with OnEnd.
func TestICENeverCompletingEndsTheSession(t *testing.T) {
	mediatest.CheckGoroutines(t)
	m := newRecordingMetrics()
	eng := newEngine(t, m, func(c *webrtc.Config) { c.ConnectTimeout = 300 * time.Millisecond })
	ev := newCallEvents()
	s := newSession(t, eng, ev)
	browser := mediatest.NewBrowser(t, "PCMU")
	phone := mediatest.NewPhone(t, "PCMU")
	ctx := context.Background()
	if _, err := s.OfferFromWebRTC(ctx, browser.Offer(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AnswerFromSIP(ctx, phone.SDP()); err != nil {
		t.Fatal(err)
	}
	ev.waitEnd(t, webrtc.ErrICETimeout, 10*time.Second, "ICE never completing")
	if !errors.Is(s.Err(), webrtc.ErrICETimeout) {
		t.Errorf("Err() = %v", s.Err())
	}
	mediatest.Eventually(t, 5*time.Second, func() (bool, string) {
		return eng.Sessions() == 0 && m.get(m.setup, "ice_timeout") == 1 && m.get(m.ended, "ice_timeout") == 1, "sessions still held or not counted"
	}, "the engine forgets the session and counts the failure")
	if _, err := s.OfferFromSIP(ctx, phone.SDP()); !errors.Is(err, webrtc.ErrICETimeout) {
		t.Errorf("a method after the end returned %v", err)
	}
}

// Closed sessions and engines refuse further use.
func TestClosedSessionAndEngine(t *testing.T) {
	mediatest.CheckGoroutines(t)
	ctx := context.Background()
	eng := newEngine(t, nil, nil)
	s := newSession(t, eng, newCallEvents())
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OfferFromSIP(ctx, g729Offer); !errors.Is(err, webrtc.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if err := eng.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.NewSession(ctx, webrtc.SessionOptions{}); !errors.Is(err, webrtc.ErrClosed) {
		t.Errorf("NewSession after Close: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]webrtc.Config{
		"no ice listen":         {},
		"bad ice listen":        {ICEListen: "nowhere"},
		"unspecified, no adv":   {ICEListen: "127.0.0.1:0", RTPListenIP: "0.0.0.0"},
		"range upside down":     {ICEListen: "127.0.0.1:0", RTPListenIP: "127.0.0.1", RTPPortMin: 30000, RTPPortMax: 20000},
		"unknown codec":         {ICEListen: "127.0.0.1:0", RTPListenIP: "127.0.0.1", Codecs: []string{"G729"}},
		"bad advertise address": {ICEListen: "127.0.0.1:0", RTPListenIP: "127.0.0.1", ICEAdvertise: []string{"example.com"}},
	} {
		if _, err := webrtc.NewEngine(context.Background(), cfg); !errors.Is(err, webrtc.ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
