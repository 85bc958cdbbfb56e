package camara

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sirupsen/logrus"

	"callpath/calls"
	"callpath/internal/mediatest"
	"callpath/internal/siptest"
	"callpath/webrtc"
	"callpath/webrtcgw"
)

const callBase = "/webrtc-call-handling/v0.3"

var callScopes = []string{callScopeCreate, callScopeRead, callScopeWrite, callScopeDelete}

// callFixture serves webrtc-call-handling over the real WebRTC gateway and
// media plane, next to webrtc-registration and webrtc-events on one store:
// the far end is a sipgo phone standing in for the B2BUA (the gateway's
// proxy), whose own path is tested in test/e2e.
type callFixture struct {
	*regFixture
	gw    *webrtcgw.Gateway
	phone *siptest.Phone
	cc    *client
	regID string
}

type gatewayMedia struct{ eng *webrtc.Engine }

func (m gatewayMedia) NewMedia(ctx context.Context, id string, onEnd func(error)) (webrtcgw.Media, error) {
	return m.eng.NewSession(ctx, webrtc.SessionOptions{ID: id, OnEnd: onEnd})
}

// sessionNotifier publishes the gateway's changes as the app does.
type sessionNotifier struct{ events *Events }

func (n sessionNotifier) Notify(ctx context.Context, s calls.Session, invitation bool) (int, error) {
	typ := TypeSessionStatus
	if invitation {
		typ = TypeSessionInvitation
	}
	return n.events.Publish(ctx, Event{PhoneNumber: s.Owner, Type: typ, SessionID: s.ID, Data: MediaSessionOf(s)})
}

func newCallFixture(t *testing.T, connectTimeout time.Duration) *callFixture {
	t.Helper()
	f := &callFixture{regFixture: newRegFixture(t), phone: siptest.NewPhone(t, "udp")}
	f.clock = time.Now() // the media plane keeps real time
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	if testing.Verbose() {
		quiet.SetOutput(os.Stderr)
		quiet.SetLevel(logrus.DebugLevel)
	}
	eng, err := webrtc.NewEngine(context.Background(), webrtc.Config{ICEListen: "127.0.0.1:0", RTPListenIP: "127.0.0.1",
		ConnectTimeout: connectTimeout, Log: logrus.NewEntry(quiet)})
	if err != nil {
		t.Fatal(err)
	}
	f.gw, err = webrtcgw.New(webrtcgw.Config{Listen: "127.0.0.1:0", Proxy: f.phone.Addr, Log: logrus.NewEntry(quiet)},
		gatewayMedia{eng}, f.devices, sessionNotifier{f.events})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.gw.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = f.gw.Close(ctx)
		_ = eng.Close(ctx)
	})
	f.events.cfg.CurrentSession = func(ctx context.Context, number, id string) (any, bool) {
		s, err := f.gw.Get(ctx, number, id)
		return MediaSessionOf(s), err == nil
	}
	api := &CallHandling{BasePath: callBase, Verifier: f.events.cfg.Verifier, Sessions: f.gw}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	f.cc = &client{t: t, base: srv.URL + callBase, spec: newSpecChecker(t, loadSpec(t, "webrtc-call-handling.yaml", nil), srv.URL, callBase)}
	r := f.rc.do("POST", "/sessions", f.token(alice, regScopes...), map[string]any{"deviceId": deviceA})
	var reg regSessionResponse
	decode(t, r.body, &reg)
	f.regID = reg.RegistrationID
	return f
}

func (f *callFixture) createBody(browser *mediatest.Browser) map[string]any {
	return map[string]any{"originatorAddress": "tel:" + alice, "receiverAddress": "tel:+4790000002",
		"offer": map[string]any{"sdp": browser.Offer(f.t)}, "clientCorrelator": "c-42"}
}

// Every operation, its refusals and the events it causes, each response
// validated against webrtc-call-handling.yaml and each event against
// webrtc-events.yaml.
func TestCallHandlingOperations(t *testing.T) {
	f := newCallFixture(t, 0)
	tok := f.token(alice, callScopes...)
	browser := mediatest.NewBrowser(t, "PCMU")
	body := f.createBody(browser)
	corr := []string{"registrationId", f.regID, CorrelatorHeader, "corr-7"}

	// Refusals of create.
	for _, tc := range []struct {
		name    string
		token   string
		body    any
		headers []string
		status  int
		code    string
	}{
		{"no token", "", body, corr, 401, "UNAUTHENTICATED"},
		{"bad token", "not-a-jwt", body, corr, 401, "UNAUTHENTICATED"},
		{"wrong scope", f.token(alice, callScopeRead), body, corr, 403, "PERMISSION_DENIED"},
		{"no registrationId", tok, body, []string{CorrelatorHeader, "corr-7"}, 400, "INVALID_ARGUMENT"},
		{"unknown registrationId", tok, body, []string{"registrationId", "reg-nope"}, 400, "INVALID_ARGUMENT"},
		{"bad JSON", tok, "{", corr, 400, "INVALID_ARGUMENT"},
		{"empty body", tok, map[string]any{}, corr, 400, "INVALID_ARGUMENT"},
		{"another's number", f.token("+4790000009", callScopes...), body, corr, 403, "INVALID_TOKEN_CONTEXT"},
		{"status on create", tok, map[string]any{"originatorAddress": "tel:" + alice, "receiverAddress": "tel:+4790000002",
			"offer": body["offer"], "status": "Connected"}, corr, 400, "INVALID_ARGUMENT"},
	} {
		r := f.cc.do("POST", "/sessions", tc.token, tc.body, tc.headers...)
		if r.status != tc.status || r.error().Code != tc.code {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}

	r := f.cc.do("POST", "/sessions", tok, body, corr...)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var created MediaSession
	decode(t, r.body, &created)
	if created.Status != "Initial" || created.MediaSessionID == "" || created.ClientCorrelator != "c-42" {
		t.Fatalf("created %+v", created)
	}
	id := created.MediaSessionID
	sub := validRequest()
	sub["types"] = []string{TypeSessionStatus}
	sub["config"].(map[string]any)["subscriptionDetail"] = map[string]any{"registrationId": f.regID, "sessionId": id}
	f.create(alice, sub)
	in := f.phone.NextCall(10 * time.Second)
	if err := in.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	waitStatus := func(want string) MediaSession {
		t.Helper()
		var got MediaSession
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			decode(t, f.cc.do("GET", "/sessions/"+id, tok, nil).body, &got)
			if got.Status == want {
				return got
			}
			<-time.After(20 * time.Millisecond)
		}
		t.Fatalf("session is %s, want %s", got.Status, want)
		return got
	}
	waitStatus("Ringing")

	// Reads and changes that are not allowed.
	if r := f.cc.do("GET", "/sessions/"+id, f.token("+4790000009", callScopes...), nil); r.status != 404 {
		t.Errorf("another subscriber's GET: %d %s", r.status, r.body)
	}
	if r := f.cc.do("GET", "/sessions/unknown", tok, nil); r.status != 404 || r.error().Code != "NOT_FOUND" {
		t.Errorf("unknown id: %d %s", r.status, r.body)
	}
	if r := f.cc.do("PUT", "/sessions/"+id+"/status", tok, map[string]any{"status": "Connected"}); r.status != 400 {
		t.Errorf("the caller answering: %d %s", r.status, r.body)
	}
	if r := f.cc.do("PUT", "/sessions/"+id+"/status", tok, map[string]any{"status": "Sleeping"}); r.status != 400 {
		t.Errorf("an unknown status: %d %s", r.status, r.body)
	}
	if r := f.cc.do("PUT", "/sessions/"+id+"/status", f.token(alice, callScopeRead), map[string]any{"status": "Hold"}); r.status != 403 {
		t.Errorf("PUT without the write scope: %d %s", r.status, r.body)
	}

	// DELETE before the answer cancels: CANCEL at the phone.
	if r := f.cc.do("DELETE", "/sessions/"+id, tok, nil, CorrelatorHeader, "corr-8"); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	eventuallyDone(t, in.Tx.Done(), "the phone's INVITE cancelled")
	waitStatus("SessionCancelled")
	if r := f.cc.do("DELETE", "/sessions/"+id, tok, nil); r.status != 404 {
		t.Errorf("DELETE of an ended session: %d %s", r.status, r.body)
	}

	// The session-status events reached the subscription, valid per the
	// events spec, in order.
	var statuses []string
	for _, e := range f.drain() {
		ev := f.c.spec.checkEvent(t, e.Body)
		if data, _ := ev["data"].(map[string]any); data != nil && ev["type"] == TypeSessionStatus {
			statuses = append(statuses, data["status"].(string))
		}
	}
	// initialEvent: the session's state when the subscription was made
	// comes first.
	if len(statuses) != 3 || statuses[0] != "Initial" || statuses[1] != "Ringing" || statuses[2] != "SessionCancelled" {
		t.Fatalf("session-status events %v", statuses)
	}
}

// A call answered by the phone whose browser never completes ICE fails
// after the connect timeout: BYE at the phone, status Failed.
func TestCallWithoutICEFails(t *testing.T) {
	f := newCallFixture(t, 500*time.Millisecond)
	tok := f.token(alice, callScopes...)
	browser := mediatest.NewBrowser(t, "PCMU")
	r := f.cc.do("POST", "/sessions", tok, f.createBody(browser), "registrationId", f.regID)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var created MediaSession
	decode(t, r.body, &created)
	in := f.phone.NextCall(10 * time.Second)
	rtp := mediatest.NewPhone(t, "PCMU")
	if err := in.Respond(200, "OK", []byte(rtp.SDP())); err != nil {
		t.Fatal(err)
	}
	// The browser never takes the answer: no ICE.
	f.phone.WaitRequest(10*time.Second, siptest.Method(sip.BYE))
	var got MediaSession
	decode(t, f.cc.do("GET", "/sessions/"+created.MediaSessionID, tok, nil).body, &got)
	if got.Status != "Failed" || got.Reason == "" {
		t.Fatalf("session %+v, want Failed with a reason", got)
	}
}

func eventuallyDone(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
