package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"callpath/internal/mediatest"
)

// A device calls baresip set up to speak DTLS-SRTP only
// (mediaenc=dtls_srtp): a real phone, with its own DTLS and SRTP stack,
// that wants "WebRTC style" media. Whatever it does with the plain offer
// first (488, as a TAS would), the call ends up connected with SRTP on the
// SIP leg, and the tones cross both ways: 1 kHz from the device into
// baresip's recording, baresip's 600 Hz to the device.
func TestDeviceCallsBaresipOverDTLSSRTP(t *testing.T) {
	phone := startBaresip(t, bob, 600, baresipOptions{mediaenc: "dtls_srtp"})
	sc := newWebRTCSceneTo(t, "sip:"+phone.addr, "")
	sc.callBob()
	sc.acceptConnected()
	tonesWithBaresipOverSRTP(t, sc, phone)
}

// The same baresip, listed in media.dtls_srtp_peers: the first INVITE
// already offers DTLS-SRTP, baresip takes it, and the call connects over
// SRTP without a 488 on the way. baresip answers at once, before the app
// can subscribe to the new session's status: the subscription's
// initialEvent brings the Connected it would otherwise miss.
func TestDeviceCallsListedBaresipOverDTLSSRTP(t *testing.T) {
	phone := startBaresip(t, bob, 600, baresipOptions{mediaenc: "dtls_srtp"})
	sc := newWebRTCSceneTo(t, "sip:"+phone.addr, fmt.Sprintf("media: {dtls_srtp_peers: [%q]}\n", phone.addr))
	sc.callBob()
	sc.acceptConnected()
	tonesWithBaresipOverSRTP(t, sc, phone)
	if phone.printed("rejected") {
		t.Error("baresip rejected an offer: the first INVITE was not DTLS-SRTP")
	}
}

// A device whose browser has only µ-law calls baresip taking only A-law
// (as many European TASes do): the media plane relays across the laws and
// the tones cross both ways.
func TestPCMUDeviceCallsPCMABaresip(t *testing.T) {
	phone := startBaresip(t, bob, 600, baresipOptions{codec: "PCMA"})
	sc := newWebRTCSceneTo(t, "sip:"+phone.addr, "")
	sc.browser = mediatest.NewBrowser(t, "PCMU")
	sc.callBob()
	sc.acceptConnected()
	sc.browser.WaitConnected(t, 10*time.Second)
	sc.browser.ToneOn(true)
	sc.browser.Ear.WaitTone(t, "the device", 600, 20*time.Second)
	eventually(t, 20*time.Second, "baresip records the device's 1 kHz", func() bool { return phone.heard(1000) })
	if got := sc.gw.metric(`callpath_media_sessions_total{codec="PCMU/PCMA",mode="relay"}`); got != "1" {
		t.Errorf("law-converting relays counted: %q", got)
	}
}

// baresip, speaking DTLS-SRTP only, calls alice's device: its
// UDP/TLS/RTP/SAVP offer is answered in kind, the device answers through
// the CAMARA API, and the tones cross both ways over SRTP.
func TestBaresipCallsDeviceOverDTLSSRTP(t *testing.T) {
	sc := newWebRTCSceneTo(t, "sip:127.0.0.1:9", "")
	phone := startBaresip(t, bob, 600, baresipOptions{mediaenc: "dtls_srtp", dial: "sip:" + alice + "@" + sc.gw.udp()})
	inv := sc.event(typeInvitation, "Initial")
	id, _ := inv["mediaSessionId"].(string)
	offer, _ := inv["offer"].(map[string]any)
	if id == "" || offer == nil {
		t.Fatalf("invitation %v", inv)
	}
	sc.subscribe(typeSessionStatus, id)
	answer := sc.browser.Answer(t, offer["sdp"].(string))
	if code, out := sc.call("PUT", "/sessions/"+id+"/status", map[string]any{
		"status": "Connected", "answer": map[string]any{"sdp": answer}}); code != http.StatusOK {
		t.Fatalf("PUT Connected: %d %v", code, out)
	}
	tonesWithBaresipOverSRTP(t, sc, phone)
}

// tonesWithBaresipOverSRTP checks a call between the scene's device and
// baresip once the device has the answer: its WebRTC leg connects, the
// tones cross both ways (1 kHz from the device into baresip's recording,
// baresip's 600 Hz to the device), and baresip says its DTLS-SRTP
// handshake completed.
func tonesWithBaresipOverSRTP(t *testing.T, sc *webrtcScene, phone *baresip) {
	t.Helper()
	sc.browser.WaitConnected(t, 10*time.Second)
	sc.browser.ToneOn(true)
	sc.browser.Ear.WaitTone(t, "the device", 600, 20*time.Second)
	eventually(t, 20*time.Second, "baresip records the device's 1 kHz", func() bool { return phone.heard(1000) })
	if !phone.printed("DTLS-SRTP complete") {
		t.Error("baresip did not report its DTLS-SRTP handshake complete")
	}
}
