package webrtc_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"callpath/internal/mediatest"
	"callpath/metrics"
	"callpath/webrtc"

	"github.com/sirupsen/logrus"
)

// recordingMetrics keeps what the engine reports, for assertions.
type recordingMetrics struct {
	mu       sync.Mutex
	started  map[string]int // codec/mode
	ended    map[string]int // reason
	packets  map[string]int // leg/direction
	dropped  map[string]int // leg/reason
	reports  map[string]int // leg
	setup    map[string]int // stage
	transcod map[string]int // direction
}

func newRecordingMetrics() *recordingMetrics {
	return &recordingMetrics{started: map[string]int{}, ended: map[string]int{}, packets: map[string]int{},
		dropped: map[string]int{}, reports: map[string]int{}, setup: map[string]int{}, transcod: map[string]int{}}
}

func (m *recordingMetrics) add(into map[string]int, key string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	into[key] += n
}

func (m *recordingMetrics) get(from map[string]int, key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return from[key]
}

func (m *recordingMetrics) SessionStarted(codec, mode string) { m.add(m.started, codec+"/"+mode, 1) }
func (m *recordingMetrics) SessionEnded(codec, mode, reason string) {
	m.add(m.ended, reason, 1)
}
func (m *recordingMetrics) Packets(leg, dir string, packets, _ int) {
	m.add(m.packets, leg+"/"+dir, packets)
}
func (m *recordingMetrics) Dropped(leg, reason string, packets int) {
	m.add(m.dropped, leg+"/"+reason, packets)
}
func (m *recordingMetrics) ReceptionReport(leg string, _ float64, _ time.Duration) {
	m.add(m.reports, leg, 1)
}
func (m *recordingMetrics) TranscodeTime(dir string, _ time.Duration) { m.add(m.transcod, dir, 1) }
func (m *recordingMetrics) SetupFailed(stage string)                  { m.add(m.setup, stage, 1) }

// newEngine starts an engine on loopback with system-picked ports.
func newEngine(t *testing.T, m *recordingMetrics, change func(*webrtc.Config)) *webrtc.Engine {
	t.Helper()
	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetLevel(logrus.WarnLevel)
	if os.Getenv("MEDIA_DEBUG") != "" {
		log.SetLevel(logrus.DebugLevel)
	}
	cfg := webrtc.Config{
		ICEListen: "127.0.0.1:0", RTPListenIP: "127.0.0.1",
		MediaTimeout: 10 * time.Second, ConnectTimeout: 10 * time.Second,
		Log: logrus.NewEntry(log),
	}
	if m != nil {
		cfg.Metrics = m
	}
	if change != nil {
		change(&cfg)
	}
	eng, err := webrtc.NewEngine(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := eng.Close(ctx); err != nil {
			t.Errorf("closing the engine: %v", err)
		}
	})
	return eng
}

// callEvents records a session's OnEnd and OnDTMF callbacks.
type callEvents struct {
	ended chan error
	mu    sync.Mutex
	dtmf  map[string]string // leg -> digits
}

func newCallEvents() *callEvents {
	return &callEvents{ended: make(chan error, 1), dtmf: map[string]string{}}
}

// waitEnd waits up to within for the session to end by itself with a
// reason that is want; it fails the test with what, and returns when.
func (c *callEvents) waitEnd(t *testing.T, want error, within time.Duration, what string) time.Time {
	t.Helper()
	select {
	case reason := <-c.ended:
		if !errors.Is(reason, want) {
			t.Fatalf("ended with %v, want %v", reason, want)
		}
		return time.Now()
	case <-time.After(within):
		t.Fatalf("%s: the session did not end within %v", what, within)
		return time.Time{}
	}
}

func (c *callEvents) options(id string) webrtc.SessionOptions {
	return webrtc.SessionOptions{
		ID:    id,
		OnEnd: func(reason error) { c.ended <- reason },
		OnDTMF: func(leg string, digit rune, d time.Duration) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.dtmf[leg] += string(digit)
		},
	}
}

func (c *callEvents) digits(leg string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dtmf[leg]
}

func newSession(t *testing.T, eng *webrtc.Engine, ev *callEvents) *webrtc.Session {
	t.Helper()
	return newSessionWith(t, eng, ev.options(t.Name()))
}

// newSecureSession is a session whose SIP offers are DTLS-SRTP.
func newSecureSession(t *testing.T, eng *webrtc.Engine, ev *callEvents) *webrtc.Session {
	t.Helper()
	opts := ev.options(t.Name())
	opts.SIPSecure = true
	return newSessionWith(t, eng, opts)
}

func newSessionWith(t *testing.T, eng *webrtc.Engine, opts webrtc.SessionOptions) *webrtc.Session {
	t.Helper()
	s, err := eng.NewSession(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("closing the session: %v", err)
		}
	})
	return s
}

// browserCallsPhone sets up a call from browser to phone through s, in the
// order a B2BUA drives it, and waits for the browser to connect.
func browserCallsPhone(t *testing.T, s *webrtc.Session, browser *mediatest.Browser, phone *mediatest.Phone, codec string) (sipOffer, webAnswer string) {
	t.Helper()
	ctx := context.Background()
	sipOffer, err := s.OfferFromWebRTC(ctx, browser.Offer(t))
	if err != nil {
		t.Fatal(err)
	}
	remote, err := mediatest.RemoteFrom(sipOffer, codec)
	if err != nil {
		t.Fatalf("the SIP offer: %v\n%s", err, sipOffer)
	}
	phone.Start(remote)
	webAnswer, err = s.AnswerFromSIP(ctx, phone.SDP())
	if err != nil {
		t.Fatal(err)
	}
	browser.Accept(t, webAnswer)
	browser.WaitConnected(t, 10*time.Second)
	return sipOffer, webAnswer
}

// browserCallsSilentPhone sets up a call from browser to phone through s
// with the phone not sending yet (a callee still ringing); it returns the
// SIP offer, for the phone's StartTo.
func browserCallsSilentPhone(t *testing.T, s *webrtc.Session, browser *mediatest.Browser, phone *mediatest.Phone) string {
	t.Helper()
	ctx := context.Background()
	sipOffer, err := s.OfferFromWebRTC(ctx, browser.Offer(t))
	if err != nil {
		t.Fatal(err)
	}
	webAnswer, err := s.AnswerFromSIP(ctx, phone.SDP())
	if err != nil {
		t.Fatal(err)
	}
	browser.Accept(t, webAnswer)
	browser.WaitConnected(t, 10*time.Second)
	return sipOffer
}

// phoneCallsBrowser sets up a call from phone to browser through s.
func phoneCallsBrowser(t *testing.T, s *webrtc.Session, browser *mediatest.Browser, phone *mediatest.Phone, codec string) (webOffer, sipAnswer string) {
	t.Helper()
	ctx := context.Background()
	webOffer, err := s.OfferFromSIP(ctx, phone.SDP())
	if err != nil {
		t.Fatal(err)
	}
	sipAnswer, err = s.AnswerFromWebRTC(ctx, browser.Answer(t, webOffer))
	if err != nil {
		t.Fatal(err)
	}
	remote, err := mediatest.RemoteFrom(sipAnswer, codec)
	if err != nil {
		t.Fatalf("the SIP answer: %v\n%s", err, sipAnswer)
	}
	phone.Start(remote)
	browser.WaitConnected(t, 10*time.Second)
	return webOffer, sipAnswer
}

// checkTonesBothWays proves audio crosses each way and does not come back:
// the browser's tone reaches the phone while the browser hears the
// phone's silence, then the phone's tone reaches the browser.
func checkTonesBothWays(t *testing.T, browser *mediatest.Browser, phone *mediatest.Phone) {
	t.Helper()
	browser.ToneOn(true)
	phone.Ear.WaitTone(t, "the phone", 1000, 10*time.Second)
	mediatest.Eventually(t, 5*time.Second, browser.Ear.Silent, "the browser hears the phone's silence, not its own tone")
	phone.ToneOn(true)
	browser.Ear.WaitTone(t, "the browser", 1000, 10*time.Second)
}

// checkDigitsBothWays sends RFC 4733 digits each way.
func checkDigitsBothWays(t *testing.T, browser *mediatest.Browser, phone *mediatest.Phone, ev *callEvents) {
	t.Helper()
	browser.SendDigits("1#")
	phone.Ear.WaitDigits(t, "the phone", "1#", 10*time.Second)
	phone.SendDigits("59")
	browser.Ear.WaitDigits(t, "the browser", "59", 10*time.Second)
	mediatest.Eventually(t, time.Second, func() (bool, string) {
		return ev.digits("webrtc") == "1#" && ev.digits("sip") == "59", fmt.Sprintf("OnDTMF saw %q from the browser, %q from the phone", ev.digits("webrtc"), ev.digits("sip"))
	}, "OnDTMF reports the digits of both legs")
}

// The gateway's Prometheus series implement the plane's Metrics.
var _ webrtc.Metrics = (*metrics.Media)(nil)
