package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"callpath/auth"
	"callpath/internal/mediatest"
	"callpath/internal/sinktest"
	"callpath/internal/siptest"
	"callpath/registry"
)

const (
	callBase          = "/webrtc-call-handling/v0.3"
	typeInvitation    = "org.camaraproject.webrtc-events.v0.session-invitation"
	typeSessionStatus = "org.camaraproject.webrtc-events.v0.session-status"
	deviceUUID        = "3f2b8c1e-6d4a-4b7e-9c2d-1a5e7f9b3c40"
)

// webrtcScene is a gateway whose static route leads to a phone, and a
// device of alice's registered through the CAMARA APIs with its
// session-invitation and session-status events going to an HTTPS sink.
type webrtcScene struct {
	t       *testing.T
	gw      *gateway
	phone   *siptest.Phone // the far end's SIP
	sink    *sinktest.Sink
	api     *camaraClient
	regID   string
	browser *mediatest.Browser
	rtp     *mediatest.Phone // the far end's RTP
}

func newWebRTCScene(t *testing.T, extra string) *webrtcScene {
	t.Helper()
	phone := siptest.NewPhone(t, "udp")
	sc := newWebRTCSceneTo(t, phone.Addr, extra)
	sc.phone = phone
	return sc
}

// newWebRTCSceneTo is a webrtcScene whose static route leads to target (a
// phone the test runs itself); phone is nil.
func newWebRTCSceneTo(t *testing.T, target, extra string) *webrtcScene {
	t.Helper()
	sc := &webrtcScene{t: t, sink: sinktest.Start(t)}
	sc.gw = startGateway(t, target, camaraConfig(sc.sink)+extra)
	tok, err := sc.gw.app.DevIssuer().Mint(auth.Token{Subject: "app-alice", PhoneNumber: alice, TTL: time.Hour, Scopes: []string{
		"webrtc-registration:sessions:create",
		"webrtc-events:" + typeInvitation + ":create", "webrtc-events:" + typeSessionStatus + ":create",
		"webrtc-call-handling:sessions:create", "webrtc-call-handling:sessions:read",
		"webrtc-call-handling:sessions:write", "webrtc-call-handling:sessions:delete",
	}})
	if err != nil {
		t.Fatal(err)
	}
	sc.api = &camaraClient{t: t, base: "http://" + sc.gw.app.HTTPAddr(), token: tok}
	sc.regID = sc.api.register(deviceUUID, time.Time{})
	sc.subscribe(typeInvitation, "")
	sc.browser = mediatest.NewBrowser(t, "opus", "PCMU", "PCMA")
	sc.rtp = mediatest.NewPhone(t, "PCMU")
	return sc
}

// subscribe sends the events of type typ to the sink: session-invitation
// per registration, session-status per media session (r2.2 asks for its
// sessionId).
func (sc *webrtcScene) subscribe(typ, sessionID string) {
	sc.t.Helper()
	detail := map[string]any{"registrationId": sc.regID}
	if sessionID != "" {
		detail["sessionId"] = sessionID
	}
	code, out := sc.api.do("POST", eventsBase+"/subscriptions", map[string]any{
		"protocol": "HTTP", "sink": sc.sink.URL, "types": []string{typ},
		"sinkCredential": map[string]any{"credentialType": "ACCESSTOKEN", "accessToken": "sink-token",
			"accessTokenExpiresUtc": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "accessTokenType": "bearer"},
		// A session-status subscription can only be made once POST
		// /sessions has named the session, by when the call may have
		// moved on (a phone answering at once): initialEvent brings the
		// state it is in, as the demo page asks too.
		"config": map[string]any{"subscriptionDetail": detail, "initialEvent": typ == typeSessionStatus},
	})
	if code != http.StatusCreated {
		sc.t.Fatalf("subscribe to %s: %d %v", typ, code, out)
	}
}

// callBob has the device call bob with the browser's offer and subscribes
// to the new session's status; it returns the mediaSessionId.
func (sc *webrtcScene) callBob() string {
	sc.t.Helper()
	code, created := sc.call("POST", "/sessions", map[string]any{
		"originatorAddress": "tel:" + alice, "receiverAddress": "tel:" + bob,
		"offer": map[string]any{"sdp": sc.browser.Offer(sc.t)}})
	id, _ := created["mediaSessionId"].(string)
	if code != http.StatusCreated || id == "" {
		sc.t.Fatalf("create: %d %v", code, created)
	}
	sc.subscribe(typeSessionStatus, id)
	return id
}

// secureTASAnswers has the scene's DTLS-SRTP phone (sc.rtp) answer the
// device's call in, whose INVITE offers DTLS-SRTP: 200 with its SDP, its
// handshake against the offer, and tones both ways once the browser has
// the answer.
func (sc *webrtcScene) secureTASAnswers(in *siptest.Incoming) {
	sc.t.Helper()
	offer := string(in.Req.Body())
	remote := sc.rtp.StartTo(sc.t, offer)
	if err := in.Respond(200, "OK", []byte(sc.rtp.SDP())); err != nil {
		sc.t.Fatal(err)
	}
	sc.acceptConnected()
	if err := sc.rtp.Handshake(offer, remote); err != nil {
		sc.t.Fatal(err)
	}
	sc.browser.WaitConnected(sc.t, 10*time.Second)
	sc.tones()
}

// acceptConnected waits for the Connected session-status event and gives
// its SDP answer to the browser; it returns the event's data.
func (sc *webrtcScene) acceptConnected() map[string]any {
	sc.t.Helper()
	connected := sc.event(typeSessionStatus, "Connected")
	answer, _ := connected["answer"].(map[string]any)
	sdp, _ := answer["sdp"].(string)
	if sdp == "" {
		sc.t.Fatalf("Connected event without an answer: %v", connected)
	}
	sc.browser.Accept(sc.t, sdp)
	return connected
}

// call sends a call-handling request with the registrationId header and
// checks that its x-correlator comes back.
func (sc *webrtcScene) call(method, path string, body any) (int, map[string]any) {
	sc.t.Helper()
	code, out, header := sc.api.request(method, callBase+path, body,
		map[string]string{"registrationId": sc.regID, "x-correlator": "corr-1"})
	if header.Get("x-correlator") != "corr-1" {
		sc.t.Errorf("%s %s: x-correlator not echoed", method, path)
	}
	return code, out
}

// event waits for the sink's CloudEvent of type typ whose data has status.
func (sc *webrtcScene) event(typ, status string) map[string]any {
	sc.t.Helper()
	var found map[string]any
	eventually(sc.t, 15*time.Second, typ+" "+status, func() bool {
		for _, e := range sc.sink.Events() {
			var data map[string]any
			if e.Type == typ && json.Unmarshal(e.Data, &data) == nil && data["status"] == status {
				found = data
				return true
			}
		}
		return false
	})
	return found
}

func (sc *webrtcScene) tones() {
	sc.t.Helper()
	sc.browser.ToneOn(true)
	sc.rtp.Ear.WaitTone(sc.t, "the phone", 1000, 10*time.Second)
	sc.rtp.ToneOn(true)
	sc.browser.Ear.WaitTone(sc.t, "the browser", 1000, 10*time.Second)
}

// A device calls a phone through the CAMARA API: the B2BUA carries the
// gateway's INVITE to the phone, 180 and 200 reach the app as
// session-status events, the media is relayed both ways, and DELETE hangs
// up with a BYE at the phone.
func TestDeviceCallsPhoneThroughTheB2BUA(t *testing.T) {
	sc := newWebRTCScene(t, "")
	code, created := sc.call("POST", "/sessions", map[string]any{
		"originatorAddress": "tel:" + alice, "receiverAddress": "tel:" + bob,
		"offer": map[string]any{"sdp": sc.browser.Offer(t)}, "clientCorrelator": "app-1"})
	if code != http.StatusCreated || created["status"] != "Initial" || created["clientCorrelator"] != "app-1" {
		t.Fatalf("create: %d %v", code, created)
	}
	id := created["mediaSessionId"].(string)
	sc.subscribe(typeSessionStatus, id)

	in := sc.phone.NextCall(10 * time.Second)
	if in.Req.From().Address.User != alice || in.Req.Recipient.User != bob || in.Req.GetHeader("Session-ID") == nil {
		t.Fatalf("INVITE at the phone:\n%s", in.Req)
	}
	sc.rtp.StartTo(t, string(in.Req.Body()))
	if err := in.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	sc.event(typeSessionStatus, "Ringing")
	if err := in.Respond(200, "OK", []byte(sc.rtp.SDP())); err != nil {
		t.Fatal(err)
	}
	if connected := sc.acceptConnected(); connected["mediaSessionId"] != id || connected["subscriptionId"] == nil {
		t.Fatalf("Connected event %v", connected)
	}
	sc.browser.WaitConnected(t, 10*time.Second)
	sc.tones()

	if code, got := sc.call("GET", "/sessions/"+id, nil); code != http.StatusOK || got["status"] != "Connected" {
		t.Fatalf("GET: %d %v", code, got)
	}
	if code, _ := sc.call("DELETE", "/sessions/"+id, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	sc.phone.WaitRequest(10*time.Second, siptest.Method(sip.BYE))
	sc.event(typeSessionStatus, "Terminated")
	if got := sc.gw.metric(`callpath_media_sessions_total{codec="PCMU",mode="relay"}`); got != "1" {
		t.Errorf("media sessions counted: %q", got)
	}
	// The gateway's call is a call of the B2BUA like any other.
	if recs := sc.gw.cdrs(1); recs[0].From != alice || recs[0].To != bob || len(recs[0].Legs) != 2 {
		t.Fatalf("CDR %+v", recs[0])
	}
}

// A device calls a TAS that wants "WebRTC style" media: it refuses the
// plain RTP offer with 488, the gateway sends the call again (a new
// Call-ID, the same Session-ID) offering DTLS-SRTP, the TAS answers and
// runs the handshake, and tones cross both ways over SRTP. The device
// hears of no failure on the way.
func TestDeviceCallsTASThatAsksForDTLSSRTP(t *testing.T) {
	sc := newWebRTCScene(t, "")
	sc.rtp = mediatest.NewSecurePhone(t, "PCMU", "active")
	id := sc.callBob()

	plain := sc.phone.NextCall(10 * time.Second)
	if body := string(plain.Req.Body()); !strings.Contains(body, "RTP/AVP") || strings.Contains(body, "a=fingerprint") {
		t.Fatalf("first offer is not plain RTP:\n%s", body)
	}
	if err := plain.Respond(488, "Not Acceptable Here", nil); err != nil {
		t.Fatal(err)
	}
	in := sc.phone.NextCall(10 * time.Second)
	offer := string(in.Req.Body())
	for _, want := range []string{"UDP/TLS/RTP/SAVP", "a=fingerprint:sha-256 ", "a=setup:actpass"} {
		if !strings.Contains(offer, want) {
			t.Fatalf("second offer lacks %q:\n%s", want, offer)
		}
	}
	if in.Req.CallID().Value() == plain.Req.CallID().Value() {
		t.Errorf("the second INVITE reuses Call-ID %s", in.Req.CallID().Value())
	}
	if a, b := sessionUUID(t, plain.Req), sessionUUID(t, in.Req); a != b {
		t.Errorf("Session-ID %q then %q: the call's Session-ID must be kept", a, b)
	}
	sc.secureTASAnswers(in)
	for _, e := range sc.sink.Events() {
		var data map[string]any
		if e.Type == typeSessionStatus && json.Unmarshal(e.Data, &data) == nil && data["status"] != "Initial" && data["status"] != "Connected" {
			t.Errorf("the device was told %v", data["status"])
		}
	}
	if code, _ := sc.call("DELETE", "/sessions/"+id, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	sc.phone.WaitRequest(10*time.Second, siptest.Method(sip.BYE))
}

// With media.sip_dtls_srtp: always, a device's call offers DTLS-SRTP in
// its first INVITE; the TAS answers it and the tones cross over SRTP.
func TestDeviceCallsWithDTLSSRTPAlways(t *testing.T) {
	sc := newWebRTCScene(t, "media: {sip_dtls_srtp: always}\n")
	sc.rtp = mediatest.NewSecurePhone(t, "PCMU", "active")
	sc.callBob()
	in := sc.phone.NextCall(10 * time.Second)
	offer := string(in.Req.Body())
	if !strings.Contains(offer, "UDP/TLS/RTP/SAVP") || !strings.Contains(offer, "a=setup:actpass") {
		t.Fatalf("first offer is not DTLS-SRTP:\n%s", offer)
	}
	sc.secureTASAnswers(in)
}

// media.dtls_srtp_peers names the SIP peers whose media is DTLS-SRTP by
// arrangement. A device's call whose routing plan rings only such peers
// offers DTLS-SRTP at once: a static route's target (listed by host:port),
// alice's LOOP_MO TAS (listed by host). A FORK between a listed TAS and an
// unlisted destination gets the plain offer on both branches: one INVITE's
// SDP reaches them all.
func TestDTLSSRTPPeersByConfiguration(t *testing.T) {
	secureAt := func(t *testing.T, in *siptest.Incoming) bool {
		t.Helper()
		return strings.Contains(string(in.Req.Body()), "UDP/TLS/RTP/SAVP")
	}
	t.Run("static route", func(t *testing.T) {
		phone := siptest.NewPhone(t, "udp")
		sc := newWebRTCSceneTo(t, phone.Addr, fmt.Sprintf("media: {dtls_srtp_peers: [%q]}\n", phone.Addr))
		sc.phone = phone
		sc.rtp = mediatest.NewSecurePhone(t, "PCMU", "active")
		sc.callBob()
		in := sc.phone.NextCall(10 * time.Second)
		if !secureAt(t, in) {
			t.Fatalf("first offer to a listed trunk is not DTLS-SRTP:\n%s", in.Req.Body())
		}
		sc.secureTASAnswers(in)
	})
	t.Run("488 to the DTLS-SRTP offer is final", func(t *testing.T) {
		phone := siptest.NewPhone(t, "udp")
		sc := newWebRTCSceneTo(t, phone.Addr, fmt.Sprintf("media: {dtls_srtp_peers: [%q]}\n", phone.Addr))
		sc.phone = phone
		sc.callBob()
		in := sc.phone.NextCall(10 * time.Second)
		if !secureAt(t, in) {
			t.Fatalf("first offer to a listed trunk is not DTLS-SRTP:\n%s", in.Req.Body())
		}
		if err := in.Respond(488, "Not Acceptable Here", nil); err != nil {
			t.Fatal(err)
		}
		// Sent again, the call would wait for an answer the phone never
		// gives, and the device would not hear Failed.
		sc.event(typeSessionStatus, "Failed")
	})
	t.Run("LOOP_MO TAS", func(t *testing.T) {
		sc := newWebRTCScene(t, breakoutConfig+"media: {dtls_srtp_peers: ['127.0.0.2']}\n")
		tas := siptest.NewPhoneOn(t, "udp", "127.0.0.2")
		sc.gw.register(alice, registry.RouteLoopMO, tas, "", "")
		sc.rtp = mediatest.NewSecurePhone(t, "PCMU", "active")
		sc.callBob()
		in := tas.NextCall(10 * time.Second)
		if !secureAt(t, in) {
			t.Fatalf("first offer to a listed TAS is not DTLS-SRTP:\n%s", in.Req.Body())
		}
		sc.secureTASAnswers(in)
	})
	t.Run("FORK with an unlisted destination", func(t *testing.T) {
		sc := newWebRTCScene(t, breakoutConfig+"media: {dtls_srtp_peers: ['127.0.0.2']}\n")
		tas := siptest.NewPhoneOn(t, "udp", "127.0.0.2")
		sc.gw.register(alice, registry.RouteFork, tas, "", "")
		sc.callBob()
		for _, in := range []*siptest.Incoming{tas.NextCall(10 * time.Second), sc.phone.NextCall(10 * time.Second)} {
			if secureAt(t, in) {
				t.Errorf("a branch of a mixed fork got DTLS-SRTP:\n%s", in.Req.Body())
			}
		}
	})
}

// A phone calls alice, whose device is registered: the B2BUA routes the
// call to the gateway, the app gets session-invitation with a WebRTC
// offer, its InProgress, Ringing and Connected reach the phone as 183, 180
// and 200 through the B2BUA, and the phone's BYE ends the session. A TAS
// offering DTLS-SRTP gets it answered in kind (setup:active, our
// fingerprint) and its handshake carries the tones.
func TestPhoneCallsDeviceThroughTheB2BUA(t *testing.T) {
	t.Run("RTP", func(t *testing.T) { phoneCallsDevice(t, false) })
	t.Run("DTLS-SRTP", func(t *testing.T) { phoneCallsDevice(t, true) })
}

func phoneCallsDevice(t *testing.T, secure bool) {
	sc := newWebRTCScene(t, "")
	if secure {
		sc.rtp = mediatest.NewSecurePhone(t, "PCMU", "actpass")
	}
	caller := siptest.NewPhone(t, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var codesMu sync.Mutex
	var codes []int
	saw := func(code int) bool {
		codesMu.Lock()
		defer codesMu.Unlock()
		return slices.Contains(codes, code)
	}
	answered := make(chan error, 1)
	dlg, err := caller.Dial(ctx, caller.InviteFrom(sc.gw.udp(), bob, alice, []byte(sc.rtp.SDP())))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		answered <- dlg.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
			codesMu.Lock()
			codes = append(codes, res.StatusCode)
			codesMu.Unlock()
			return nil
		}})
	}()
	inv := sc.event(typeInvitation, "Initial")
	id, _ := inv["mediaSessionId"].(string)
	offer, _ := inv["offer"].(map[string]any)
	if id == "" || offer == nil || inv["originatorAddress"] != "tel:"+bob || inv["receiverAddress"] != "tel:"+alice {
		t.Fatalf("invitation %v", inv)
	}
	sc.subscribe(typeSessionStatus, id)
	answer := sc.browser.Answer(t, offer["sdp"].(string))
	// Each provisional is awaited at the caller before the next change:
	// sipgo's client transaction hands up only the latest of responses
	// that arrive in a burst.
	for _, step := range []struct {
		body map[string]any
		code int
	}{
		{map[string]any{"status": "InProgress", "answer": map[string]any{"sdp": answer}}, 183},
		{map[string]any{"status": "Ringing"}, 180},
		{map[string]any{"status": "Connected"}, 0},
	} {
		if code, out := sc.call("PUT", "/sessions/"+id+"/status", step.body); code != http.StatusOK || out["status"] != step.body["status"] {
			t.Fatalf("PUT %v: %d %v", step.body["status"], code, out)
		}
		if step.code != 0 {
			eventually(t, 10*time.Second, fmt.Sprintf("%d at the caller", step.code), func() bool { return saw(step.code) })
		}
	}
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	sipAnswer := string(dlg.InviteResponse.Body())
	remote := sc.rtp.StartTo(t, sipAnswer)
	if secure {
		if !strings.Contains(sipAnswer, "UDP/TLS/RTP/SAVP") || !strings.Contains(sipAnswer, "a=setup:active") {
			t.Fatalf("answer to a DTLS-SRTP offer:\n%s", sipAnswer)
		}
		if err := sc.rtp.Handshake(sipAnswer, remote); err != nil {
			t.Fatal(err)
		}
	}
	sc.browser.WaitConnected(t, 10*time.Second)
	sc.tones()
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	sc.event(typeSessionStatus, "Terminated")
}

// alice has a FORK registration: her TAS and her browser ring together,
// the browser answers, and the TAS's ringing branch is cancelled.
func TestForkTASAndBrowserRingTogether(t *testing.T) {
	sc := newWebRTCScene(t, breakoutConfig)
	tas := siptest.NewPhoneOn(t, "udp", "127.0.0.2")
	sc.gw.register(alice, registry.RouteFork, tas, "", "")
	caller := siptest.NewPhone(t, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dlg, err := caller.Dial(ctx, caller.InviteFrom(sc.gw.udp(), bob, alice, []byte(sc.rtp.SDP())))
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() { answered <- dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}) }()

	atTAS := tas.NextCall(10 * time.Second)
	if err := atTAS.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	inv := sc.event(typeInvitation, "Initial")
	offer := inv["offer"].(map[string]any)["sdp"].(string)
	answer := sc.browser.Answer(t, offer)
	if code, out := sc.call("PUT", "/sessions/"+inv["mediaSessionId"].(string)+"/status",
		map[string]any{"status": "Connected", "answer": map[string]any{"sdp": answer}}); code != http.StatusOK {
		t.Fatalf("answer: %d %v", code, out)
	}
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the TAS's INVITE cancelled", txEnded(atTAS))
	sc.rtp.StartTo(t, string(dlg.InviteResponse.Body()))
	sc.browser.WaitConnected(t, 10*time.Second)
	sc.tones()
	_ = dlg.Bye(ctx)
}

// Bad requests get CAMARA errors: no registrationId, an originator that
// is not the token's number, garbage SDP, a status the caller may not
// set; another subscriber cannot see the session.
func TestCallHandlingRefusals(t *testing.T) {
	sc := newWebRTCScene(t, "")
	offer := map[string]any{"sdp": sc.browser.Offer(t)}
	body := func(from, sdp any) map[string]any {
		return map[string]any{"originatorAddress": from, "receiverAddress": "tel:" + bob, "offer": sdp}
	}
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		code   string
	}{
		{"someone else's number", body("tel:"+bob, offer), 403, "INVALID_TOKEN_CONTEXT"},
		{"garbage SDP", body("tel:"+alice, map[string]any{"sdp": "hello"}), 400, "INVALID_ARGUMENT"},
		{"no offer", body("tel:"+alice, nil), 400, "INVALID_ARGUMENT"},
		{"bad address", body("alice", offer), 400, "INVALID_ARGUMENT"},
	} {
		if code, out := sc.call("POST", "/sessions", tc.body); code != tc.status || out["code"] != tc.code {
			t.Errorf("%s: %d %v", tc.name, code, out)
		}
	}
	code, created := sc.call("POST", "/sessions", body("tel:"+alice, offer))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, created)
	}
	id := created["mediaSessionId"].(string)
	sc.subscribe(typeSessionStatus, id)
	ringing := sc.phone.NextCall(10 * time.Second) // nobody answers
	if err := ringing.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	sc.event(typeSessionStatus, "Ringing")
	if code, out := sc.call("PUT", "/sessions/"+id+"/status", map[string]any{"status": "Connected"}); code != 400 || out["code"] != "INVALID_ARGUMENT" {
		t.Errorf("the caller answering its own call: %d %v", code, out)
	}
	other := newCAMARAClient(t, sc.gw.app.HTTPAddr(), sc.gw.app.DevIssuer(), bob)
	tok, _ := sc.gw.app.DevIssuer().Mint(auth.Token{Subject: "app-bob", PhoneNumber: bob, TTL: time.Hour,
		Scopes: []string{"webrtc-call-handling:sessions:read"}})
	other.token = tok
	if code, _ := other.do("GET", callBase+"/sessions/"+id, nil); code != http.StatusNotFound {
		t.Errorf("another subscriber read the session: %d", code)
	}
	if code, _ := sc.call("DELETE", "/sessions/"+id, nil); code != http.StatusNoContent {
		t.Fatalf("cancel: %d", code)
	}
	eventually(t, 10*time.Second, "the phone's INVITE cancelled", txEnded(ringing))
	sc.event(typeSessionStatus, "SessionCancelled")
}

// A graceful shutdown drains WebRTC calls like any other (they are B2BUA
// calls) and then hangs them up: the phone gets its BYE before the
// gateway stops.
func TestShutdownHangsUpWebRTCCalls(t *testing.T) {
	sc := newWebRTCScene(t, "")
	sc.callBob()
	in := sc.phone.NextCall(10 * time.Second)
	if err := in.Respond(200, "OK", []byte(sc.rtp.SDP())); err != nil {
		t.Fatal(err)
	}
	sc.event(typeSessionStatus, "Connected")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := sc.gw.app.Shutdown(ctx, true, 500*time.Millisecond); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	sc.phone.WaitRequest(5*time.Second, siptest.Method(sip.BYE))
}

// alice's browser is registered but listens for no invitation, and her
// FALLBACK TAS takes the call at once: the gateway answers 480 instead of
// ringing nobody until its ring timeout.
func TestFallbackWhenNoDeviceListens(t *testing.T) {
	sink := sinktest.Start(t)
	phone := siptest.NewPhone(t, "udp")
	gw := startGateway(t, phone.Addr, camaraConfig(sink)+"registrations: {allow_plain_sip: true, fallback_timeout: 30s}\n")
	api := newCAMARAClient(t, gw.app.HTTPAddr(), gw.app.DevIssuer(), alice)
	api.register(deviceUUID, time.Time{})
	tas := siptest.NewPhoneOn(t, "udp", "127.0.0.2")
	gw.register(alice, registry.RouteFallback, tas, "", "")
	caller := siptest.NewPhone(t, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rtp := mediatest.NewPhone(t, "PCMU")
	if _, err := caller.Dial(ctx, caller.InviteFrom(gw.udp(), bob, alice, []byte(rtp.SDP()))); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	atTAS := tas.NextCall(5 * time.Second)
	if time.Since(start) > 3*time.Second || atTAS.Req.Recipient.User != alice {
		t.Fatalf("the TAS got %s after %v", atTAS.Req.Recipient.String(), time.Since(start))
	}
}
