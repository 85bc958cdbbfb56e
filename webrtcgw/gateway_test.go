package webrtcgw_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/sirupsen/logrus"

	"callpath/calls"
	"callpath/internal/mediatest"
	"callpath/internal/siptest"
	"callpath/webrtc"
	"callpath/webrtcgw"
)

const (
	alice    = "+4790000001" // the device's subscriber
	bob      = "+4790000002" // the phone
	aliceReg = "reg-alice"
)

// liveDevices stands for the device registration service, which is not
// under test here: alice has one live registration.
type liveDevices struct{}

func (liveDevices) Live(_ context.Context, number, id string) bool {
	return number == alice && id == aliceReg
}
func (liveDevices) HasDevice(number string) bool { return number == alice }

// notifications records what the apps would be told, in order.
type notifications struct {
	mu   sync.Mutex
	all  []calls.Session
	kick chan struct{}
	deaf bool // no subscription takes invitations
}

func (n *notifications) Notify(_ context.Context, s calls.Session, invitation bool) (int, error) {
	n.mu.Lock()
	if invitation && n.deaf {
		n.mu.Unlock()
		return 0, nil
	}
	if invitation {
		s.Reason = "invitation"
	}
	n.all = append(n.all, s)
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
	return 1, nil
}

// wait returns the first notification (after the first skip ones) whose
// status is want.
func (n *notifications) wait(t *testing.T, want calls.Status) calls.Session {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		n.mu.Lock()
		for _, s := range n.all {
			if s.Status == want && (want != calls.Initial || s.Reason == "invitation") {
				n.mu.Unlock()
				return s
			}
		}
		seen := make([]string, 0, len(n.all))
		for _, s := range n.all {
			seen = append(seen, string(s.Status))
		}
		n.mu.Unlock()
		select {
		case <-n.kick:
		case <-deadline:
			t.Fatalf("no %s notification; got %v", want, seen)
		}
	}
}

type mediaEngine struct{ eng *webrtc.Engine }

func (m mediaEngine) NewMedia(ctx context.Context, id string, onEnd func(error)) (webrtcgw.Media, error) {
	return m.eng.NewSession(ctx, webrtc.SessionOptions{ID: id, OnEnd: onEnd})
}

type fixture struct {
	gw    *webrtcgw.Gateway
	sip   *siptest.Phone // the far end's SIP, also the gateway's proxy here
	notes *notifications
}

func newFixture(t *testing.T, ringTimeout time.Duration) *fixture {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	if os.Getenv("MEDIA_DEBUG") != "" {
		log.SetLevel(logrus.DebugLevel)
	}
	eng, err := webrtc.NewEngine(context.Background(), webrtc.Config{
		ICEListen: "127.0.0.1:0", RTPListenIP: "127.0.0.1", MediaTimeout: 10 * time.Second,
		ConnectTimeout: 10 * time.Second, Log: logrus.NewEntry(log)})
	if err != nil {
		t.Fatal(err)
	}
	phone := siptest.NewPhone(t, "udp")
	notes := &notifications{kick: make(chan struct{}, 1)}
	gw, err := webrtcgw.New(webrtcgw.Config{Listen: "127.0.0.1:0", Proxy: phone.Addr, RingTimeout: ringTimeout,
		Log: logrus.NewEntry(log)}, mediaEngine{eng}, liveDevices{}, notes)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Close(ctx); err != nil {
			t.Errorf("closing the gateway: %v", err)
		}
		if err := eng.Close(ctx); err != nil {
			t.Errorf("closing the engine: %v", err)
		}
	})
	return &fixture{gw: gw, sip: phone, notes: notes}
}

func tones(t *testing.T, browser *mediatest.Browser, phone *mediatest.Phone) {
	t.Helper()
	browser.ToneOn(true)
	phone.Ear.WaitTone(t, "the phone", 1000, 10*time.Second)
	phone.ToneOn(true)
	browser.Ear.WaitTone(t, "the browser", 1000, 10*time.Second)
}

// The device calls a phone: the INVITE carries its number and a
// Session-ID, 180 and 200 become Ringing and Connected with the answer,
// tones cross both ways, and DELETE hangs up with BYE.
func TestDeviceCallsPhone(t *testing.T) {
	f := newFixture(t, 0)
	browser := mediatest.NewBrowser(t, "opus", "PCMU", "PCMA")
	rtp := mediatest.NewPhone(t, "PCMU")
	ctx := context.Background()

	s, err := f.gw.Create(ctx, alice, aliceReg, calls.Session{Originator: calls.NumberAddress(alice),
		Receiver: calls.NumberAddress(bob), Offer: browser.Offer(t), ClientCorrelator: "c-1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != calls.Initial || s.ID == "" || s.ClientCorrelator != "c-1" || s.Role != calls.Originator {
		t.Fatalf("created %+v", s)
	}
	in := f.sip.NextCall(10 * time.Second)
	if in.Req.From().Address.User != alice || in.Req.Recipient.User != bob || in.Req.GetHeader("Session-ID") == nil {
		t.Fatalf("INVITE %s", in.Req)
	}
	rtp.StartTo(t, string(in.Req.Body()))
	if err := in.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	f.notes.wait(t, calls.Ringing)
	if err := in.Respond(200, "OK", []byte(rtp.SDP())); err != nil {
		t.Fatal(err)
	}
	connected := f.notes.wait(t, calls.Connected)
	if connected.Answer == "" || connected.Sequence < 2 {
		t.Fatalf("Connected without an answer or sequence: %+v", connected)
	}
	browser.Accept(t, connected.Answer)
	browser.WaitConnected(t, 10*time.Second)
	tones(t, browser, rtp)

	if got, err := f.gw.Get(ctx, alice, s.ID); err != nil || got.Status != calls.Connected {
		t.Fatalf("GET: %+v %v", got, err)
	}
	// Hold and resume from the device re-INVITE the phone.
	for _, step := range []struct {
		status    calls.Status
		direction string
	}{{calls.Hold, "a=sendonly"}, {calls.Resume, "a=sendrecv"}} {
		if got, err := f.gw.Update(ctx, alice, s.ID, calls.Change{Status: step.status}); err != nil || got.Status != step.status {
			t.Fatalf("PUT %s: %+v %v", step.status, got, err)
		}
		reinvite := f.sip.WaitRequest(10*time.Second, func(r *sip.Request) bool {
			return r.Method == sip.INVITE && r.To().Params.Has("tag") && strings.Contains(string(r.Body()), step.direction)
		})
		if reinvite.CallID().Value() != in.Req.CallID().Value() {
			t.Fatalf("re-INVITE outside the call's dialog")
		}
	}
	if _, err := f.gw.Get(ctx, bob, s.ID); !errors.Is(err, calls.ErrNotFound) {
		t.Fatalf("another subscriber's GET: %v", err)
	}
	if err := f.gw.Delete(ctx, alice, s.ID); err != nil {
		t.Fatal(err)
	}
	f.sip.WaitRequest(10*time.Second, siptest.Method(sip.BYE))
	f.notes.wait(t, calls.Terminated)
	if err := f.gw.Delete(ctx, alice, s.ID); !errors.Is(err, calls.ErrNotFound) {
		t.Fatalf("deleting an ended session: %v", err)
	}
}

// A phone calls the device: session-invitation carries a WebRTC offer,
// the device's InProgress, Ringing and Connected become 183, 180 and 200,
// tones cross, and the phone's BYE ends the session as Terminated.
func TestPhoneCallsDevice(t *testing.T) {
	f := newFixture(t, 0)
	browser := mediatest.NewBrowser(t, "opus", "PCMU", "PCMA")
	rtp := mediatest.NewPhone(t, "PCMU")
	ctx := context.Background()

	var progress []int
	var mu sync.Mutex
	dialled := make(chan error, 1)
	var dlg *sipgo.DialogClientSession
	go func() {
		var err error
		dlg, err = f.sip.Dial(ctx, f.sip.InviteFrom(strings.TrimPrefix(f.gw.URI(), "sip:"), bob, alice, []byte(rtp.SDP())))
		if err == nil {
			err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
				mu.Lock()
				progress = append(progress, res.StatusCode)
				mu.Unlock()
				return nil
			}})
		}
		dialled <- err
	}()
	inv := f.notes.wait(t, calls.Initial)
	if inv.Offer == "" || inv.Role != calls.Receiver || inv.Originator != calls.NumberAddress(bob) || inv.Owner != alice {
		t.Fatalf("invitation %+v", inv)
	}
	answer := browser.Answer(t, inv.Offer)
	if _, err := f.gw.Update(ctx, alice, inv.ID, calls.Change{Status: calls.Connected}); !errors.Is(err, calls.ErrAnswerRequired) {
		t.Fatalf("Connected without any answer: %v", err)
	}
	// Each provisional response is awaited before the next change: sipgo's
	// client transaction hands up only the latest of responses that come
	// in a burst.
	sawCode := func(code int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range progress {
				if c == code {
					return true
				}
			}
			return false
		}
	}
	for _, step := range []struct {
		change calls.Change
		code   int
	}{{calls.Change{Status: calls.InProgress, Answer: answer}, 183}, {calls.Change{Status: calls.Ringing}, 180}, {calls.Change{Status: calls.Connected}, 0}} {
		if s, err := f.gw.Update(ctx, alice, inv.ID, step.change); err != nil || s.Status != step.change.Status {
			t.Fatalf("PUT %s: %+v %v", step.change.Status, s, err)
		}
		if step.code != 0 {
			mediatest.Eventually(t, 10*time.Second, func() (bool, string) { return sawCode(step.code)(), "" }, "the caller gets %d", step.code)
		}
	}
	if err := <-dialled; err != nil {
		t.Fatal(err)
	}
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	var got []int
	for _, c := range progress {
		if c != 100 { // hop by hop, and handed up in any order
			got = append(got, c)
		}
	}
	mu.Unlock()
	if len(got) < 3 || got[len(got)-3] != 183 || got[len(got)-2] != 180 || got[len(got)-1] != 200 {
		t.Fatalf("responses %v, want ... 183 180 200", got)
	}
	rtp.StartTo(t, string(dlg.InviteResponse.Body()))
	browser.WaitConnected(t, 10*time.Second)
	tones(t, browser, rtp)

	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	ended := f.notes.wait(t, calls.Terminated)
	if ended.EndedAt.IsZero() {
		t.Fatalf("ended %+v", ended)
	}
}

// Refusals: a garbage offer, another number as originator, an unknown
// registration; an incoming call the device declines gets 603, one nobody
// answers gets 480 after the ring timeout.
func TestRefusalsAndDeclines(t *testing.T) {
	f := newFixture(t, 2*time.Second)
	ctx := context.Background()
	browser := mediatest.NewBrowser(t, "PCMU")
	base := calls.Session{Originator: calls.NumberAddress(alice), Receiver: calls.NumberAddress(bob), Offer: browser.Offer(t)}
	bad := base
	bad.Offer = "v=0\r\nthis is not sdp"
	if _, err := f.gw.Create(ctx, alice, aliceReg, bad); !errors.Is(err, calls.ErrBadOffer) {
		t.Errorf("garbage offer: %v", err)
	}
	if _, err := f.gw.Create(ctx, bob, aliceReg, base); !errors.Is(err, calls.ErrNotOriginator) {
		t.Errorf("someone else's number as originator: %v", err)
	}
	if _, err := f.gw.Create(ctx, alice, "reg-unknown", base); !errors.Is(err, calls.ErrUnknownRegistration) {
		t.Errorf("unknown registration: %v", err)
	}

	rtp := mediatest.NewPhone(t, "PCMU")
	var failed *sipgo.ErrDialogResponse
	call := func() (code chan int) {
		code = make(chan int, 1)
		go func() {
			dlg, err := f.sip.Dial(ctx, f.sip.InviteFrom(strings.TrimPrefix(f.gw.URI(), "sip:"), bob, alice, []byte(rtp.SDP())))
			if err != nil {
				code <- 0
				return
			}
			var failed *sipgo.ErrDialogResponse
			if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); errors.As(err, &failed) {
				code <- failed.Res.StatusCode
				return
			}
			code <- 200
		}()
		return code
	}
	declined := call()
	inv := f.notes.wait(t, calls.Initial)
	if err := f.gw.Delete(ctx, alice, inv.ID); err != nil {
		t.Fatal(err)
	}
	if c := <-declined; c != 603 {
		t.Fatalf("declined call got %d, want 603", c)
	}
	f.notes.wait(t, calls.Declined)

	unanswered := call()
	if c := <-unanswered; c != 480 {
		t.Fatalf("unanswered call got %d, want 480", c)
	}
	f.notes.wait(t, calls.NoAnswer)

	// With no app listening for invitations, the call fails at once (480,
	// not after the ring timeout), so that a FALLBACK can take it.
	f.notes.mu.Lock()
	f.notes.deaf = true
	f.notes.mu.Unlock()
	start := time.Now()
	if c := <-call(); c != 480 || time.Since(start) > time.Second {
		t.Fatalf("a call nobody can hear got %d after %v, want 480 at once", c, time.Since(start))
	}
	f.notes.wait(t, calls.NotReachable)
	f.notes.mu.Lock()
	f.notes.deaf = false
	f.notes.mu.Unlock()

	// An offer with no codec the media plane carries gets 488.
	g729 := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
	dlg488, err := f.sip.Dial(ctx, f.sip.InviteFrom(strings.TrimPrefix(f.gw.URI(), "sip:"), bob, alice, []byte(g729)))
	if err != nil {
		t.Fatal(err)
	}
	if err := dlg488.WaitAnswer(ctx, sipgo.AnswerOptions{}); !errors.As(err, &failed) || failed.Res.StatusCode != 488 {
		t.Fatalf("G.729-only call: %v", err)
	}

	// A call for a number with no device is not taken.
	dlg, err := f.sip.Dial(ctx, f.sip.InviteFrom(strings.TrimPrefix(f.gw.URI(), "sip:"), alice, bob, []byte(rtp.SDP())))
	if err != nil {
		t.Fatal(err)
	}
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); !errors.As(err, &failed) || failed.Res.StatusCode != 480 {
		t.Fatalf("call for a number without devices: %v", err)
	}
}
