package webrtc_test

import (
	"context"
	"net"
	"regexp"
	"strconv"
	"testing"

	"callpath/internal/mediatest"
	"callpath/webrtc"
)

// Every call's WebRTC leg answers on the engine's one ICE port, and its
// candidates carry the advertised address instead of the local one.
func TestICEOnOnePortWithAdvertisedAddress(t *testing.T) {
	mediatest.CheckGoroutines(t)
	eng := newEngine(t, nil, func(c *webrtc.Config) { c.ICEAdvertise = []string{"203.0.113.7"} })
	port := strconv.Itoa(eng.ICEAddr().(*net.UDPAddr).Port)
	candidate := regexp.MustCompile(`a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host`)
	for i := range 3 {
		s := newSession(t, eng, newCallEvents())
		browser := mediatest.NewBrowser(t, "PCMU")
		phone := mediatest.NewPhone(t, "PCMU")
		ctx := context.Background()
		if _, err := s.OfferFromWebRTC(ctx, browser.Offer(t)); err != nil {
			t.Fatal(err)
		}
		answer, err := s.AnswerFromSIP(ctx, phone.SDP())
		if err != nil {
			t.Fatal(err)
		}
		found := candidate.FindAllStringSubmatch(answer, -1)
		if len(found) == 0 {
			t.Fatalf("call %d: no host candidate in\n%s", i, answer)
		}
		for _, c := range found {
			if c[1] != "203.0.113.7" || c[2] != port {
				t.Errorf("call %d: candidate %s:%s, want 203.0.113.7:%s", i, c[1], c[2], port)
			}
		}
	}
}
