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
	s := newSecureSession(t, eng, ev)
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
	answerOverDTLSSRTP(t, s, browser, tas, sipOffer)
	checkTonesBothWays(t, browser, tas)
	checkDigitsBothWays(t, browser, tas, ev)
}

// answerOverDTLSSRTP has tas answer the DTLS-SRTP sipOffer of a browser's
// call through s: the browser gets the answer and connects, the TAS runs
// its handshake against the offer.
func answerOverDTLSSRTP(t *testing.T, s *webrtc.Session, browser *mediatest.Browser, tas *mediatest.Phone, sipOffer string) {
	t.Helper()
	remote, err := mediatest.RemoteFrom(sipOffer, "PCMU")
	if err != nil {
		t.Fatal(err)
	}
	webAnswer, err := s.AnswerFromSIP(context.Background(), tas.SDP())
	if err != nil {
		t.Fatal(err)
	}
	browser.Accept(t, webAnswer)
	browser.WaitConnected(t, 10*time.Second)
	tas.Start(remote)
	if err := tas.Handshake(sipOffer, remote); err != nil {
		t.Fatal(err)
	}
}

// secureTASCalls has tas, whose SDP offer is offer, call the browser
// through s: the SIP answer must hold each of want; the TAS runs its
// handshake against it and the browser connects. It returns the answer.
func secureTASCalls(t *testing.T, s *webrtc.Session, browser *mediatest.Browser, tas *mediatest.Phone, offer, codec string, want ...string) string {
	t.Helper()
	ctx := context.Background()
	webOffer, err := s.OfferFromSIP(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	sipAnswer, err := s.AnswerFromWebRTC(ctx, browser.Answer(t, webOffer))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !strings.Contains(sipAnswer, w) {
			t.Fatalf("SIP answer lacks %q:\n%s", w, sipAnswer)
		}
	}
	remote, err := mediatest.RemoteFrom(sipAnswer, codec)
	if err != nil {
		t.Fatal(err)
	}
	tas.Start(remote)
	if err := tas.Handshake(sipAnswer, remote); err != nil {
		t.Fatal(err)
	}
	browser.WaitConnected(t, 10*time.Second)
	return sipAnswer
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
	secureTASCalls(t, s, browser, tas, tas.SDP(), "PCMA", "UDP/TLS/RTP/SAVP", "a=fingerprint:sha-256 ", "a=setup:active", "a=rtcp-mux")
	checkTonesBothWays(t, browser, tas)
}

// A PBX in "webrtc=yes" style offers DTLS-SRTP with ICE (credentials and a
// host candidate, UDP/TLS/RTP/SAVPF): the plane answers without ICE
// attributes, so the PBX proceeds at the default address (RFC 8839 §4.3),
// and the handshake and tones work as without ICE.
func TestICEOfferFromSIPAnsweredWithoutICE(t *testing.T) {
	mediatest.CheckGoroutines(t)
	eng := newEngine(t, nil, nil)
	s := newSession(t, eng, newCallEvents())
	browser := mediatest.NewBrowser(t, "PCMU")
	pbx := mediatest.NewSecurePhone(t, "PCMU", "actpass")
	sipAnswer := secureTASCalls(t, s, browser, pbx, withICE(t, pbx.SDP(), pbx.Addr().String()), "PCMU",
		"UDP/TLS/RTP/SAVPF", "a=setup:active", "a=rtcp-mux")
	for _, unwanted := range []string{"a=ice-", "a=candidate"} {
		if strings.Contains(sipAnswer, unwanted) {
			t.Fatalf("SIP answer has %q:\n%s", unwanted, sipAnswer)
		}
	}
	checkTonesBothWays(t, browser, pbx)
}

// withICE makes a DTLS-SRTP phone's SDP look like a WebRTC-style PBX's:
// UDP/TLS/RTP/SAVPF with ICE credentials and a host candidate at hostPort.
func withICE(t *testing.T, sdp, hostPort string) string {
	t.Helper()
	host, port, ok := strings.Cut(hostPort, ":")
	if !ok {
		t.Fatalf("address %q", hostPort)
	}
	sdp = strings.Replace(sdp, "UDP/TLS/RTP/SAVP ", "UDP/TLS/RTP/SAVPF ", 1)
	return sdp + "a=ice-ufrag:pbxU\r\na=ice-pwd:pbxpasswordpbxpassword00\r\n" +
		"a=candidate:1 1 UDP 2130706431 " + host + " " + port + " typ host\r\n"
}

// A TAS whose certificate is not the one its SDP's fingerprint names
// fails the handshake: the session ends with ErrDTLSFailed, and the
// imposter gets no keys.
func TestDTLSSRTPFingerprintMismatchEndsTheCall(t *testing.T) {
	mediatest.CheckGoroutines(t)
	m := newRecordingMetrics()
	eng := newEngine(t, m, nil)
	ev := newCallEvents()
	s := newSecureSession(t, eng, ev)
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
	ev.waitEnd(t, webrtc.ErrDTLSFailed, 15*time.Second, "a fingerprint mismatch")
	mediatest.Eventually(t, 5*time.Second, func() (bool, string) {
		return m.get(m.setup, "sip_dtls") == 1, "not counted"
	}, "the failure is counted")
}

// A TAS that refuses the plain RTP offer (488) gets the same call offered
// again over DTLS-SRTP (SecureSIPOffer): same port and codecs, its
// handshake and SRTP then carry tones both ways. A second SecureSIPOffer,
// or one after the answer, is out of order.
func TestSecureSIPOfferAfterARefusal(t *testing.T) {
	mediatest.CheckGoroutines(t)
	eng := newEngine(t, nil, nil)
	s := newSession(t, eng, newCallEvents())
	browser := mediatest.NewBrowser(t, "PCMU")
	tas := mediatest.NewSecurePhone(t, "PCMU", "passive")
	ctx := context.Background()

	plain, err := s.OfferFromWebRTC(ctx, browser.Offer(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plain, "RTP/AVP 0") || strings.Contains(plain, "a=fingerprint") {
		t.Fatalf("the first SIP offer is not plain RTP:\n%s", plain)
	}
	secure, err := s.SecureSIPOffer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"UDP/TLS/RTP/SAVP 0", "a=fingerprint:sha-256 ", "a=setup:actpass", "a=rtcp-mux"} {
		if !strings.Contains(secure, want) {
			t.Fatalf("secure SIP offer lacks %q:\n%s", want, secure)
		}
	}
	plainAt, _ := mediatest.RemoteFrom(plain, "PCMU")
	remote, err := mediatest.RemoteFrom(secure, "PCMU")
	if err != nil || remote != plainAt {
		t.Fatalf("secure offer at %v (%v), plain at %v", remote, err, plainAt)
	}
	if _, err := s.SecureSIPOffer(ctx); !errors.Is(err, webrtc.ErrCallOrder) {
		t.Fatalf("second SecureSIPOffer: %v", err)
	}
	answerOverDTLSSRTP(t, s, browser, tas, secure)
	checkTonesBothWays(t, browser, tas)
	if _, err := s.SecureSIPOffer(ctx); !errors.Is(err, webrtc.ErrCallOrder) {
		t.Fatalf("SecureSIPOffer after the answer: %v", err)
	}
}

// A plain RTP answer to a DTLS-SRTP offer is refused: the offer asked for
// SRTP, and media in clear would be a downgrade.
func TestPlainAnswerToSecureOfferRefused(t *testing.T) {
	eng := newEngine(t, nil, nil)
	s := newSession(t, eng, newCallEvents())
	browser := mediatest.NewBrowser(t, "PCMU")
	ctx := context.Background()
	if _, err := s.OfferFromWebRTC(ctx, browser.Offer(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SecureSIPOffer(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AnswerFromSIP(ctx, mediatest.NewPhone(t, "PCMU").SDP()); !errors.Is(err, webrtc.ErrUnsupportedTransport) {
		t.Fatalf("plain answer to a secure offer: %v", err)
	}
}
