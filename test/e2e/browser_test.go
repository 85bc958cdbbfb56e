package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"callpath/internal/mediatest"
	"callpath/internal/siptest"
)

// hostAddress is an IPv4 address of this machine that is not loopback:
// Chromium never gathers ICE candidates on loopback (DESIGN §7), so the
// media plane listens and advertises there. Packets to it stay inside the
// machine.
func hostAddress(t *testing.T) string {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
		}
	}
	t.Fatal("this machine has no non-loopback IPv4 address for Chromium's ICE")
	return ""
}

// toneWAV writes seconds of a 1 kHz sine at 48 kHz, mono, 16-bit: the
// browser's fake microphone.
func toneWAV(t *testing.T, seconds int) string {
	t.Helper()
	const rate = 48000
	n := rate * seconds
	data := make([]byte, 44+2*n)
	copy(data, "RIFF")
	binary.LittleEndian.PutUint32(data[4:], uint32(36+2*n))
	copy(data[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(data[16:], 16)
	binary.LittleEndian.PutUint16(data[20:], 1) // PCM
	binary.LittleEndian.PutUint16(data[22:], 1) // mono
	binary.LittleEndian.PutUint32(data[24:], rate)
	binary.LittleEndian.PutUint32(data[28:], rate*2)
	binary.LittleEndian.PutUint16(data[32:], 2)
	binary.LittleEndian.PutUint16(data[34:], 16)
	copy(data[36:], "data")
	binary.LittleEndian.PutUint32(data[40:], uint32(2*n))
	for i := range n {
		v := int16(12000 * math.Sin(2*math.Pi*1000*float64(i)/rate))
		binary.LittleEndian.PutUint16(data[44+2*i:], uint16(v))
	}
	path := filepath.Join(t.TempDir(), "tone.wav")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// browserScene is the gateway with the demo page, headless Chromium on it
// (fake microphone: a 1 kHz tone), and a SIP phone with RTP as the far end.
type browserScene struct {
	t     *testing.T
	gw    *gateway
	phone *siptest.Phone
	rtp   *mediatest.Phone
	page  context.Context
}

func newBrowserScene(t *testing.T) *browserScene {
	t.Helper()
	phone := siptest.NewPhone(t, "udp")
	sc := newBrowserSceneTo(t, phone.Addr)
	sc.phone, sc.rtp = phone, mediatest.NewPhone(t, "PCMU")
	return sc
}

// newBrowserSceneTo is the gateway, routing every call to target, with
// Chromium on its demo page.
func newBrowserSceneTo(t *testing.T, target string) *browserScene {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (apt-get install chromium; scripts/deps.sh does)")
	}
	host := hostAddress(t)
	sc := &browserScene{t: t}
	// The shipped sink policy: the page's sinks are the embedded relay's,
	// delivered in-process although they are plain http on loopback.
	sc.gw = startGateway(t, target, fmt.Sprintf(`media: {ice_listen: "%s:0"}
camara:
  delivery: {retry_min: 50ms, retry_max: 200ms}
`, host))
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", toneWAV(t, 30)),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	page, cancelPage := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelPage(); cancelAlloc() })
	if err := chromedp.Listen(page, func(ev any) {
		if e, ok := ev.(*runtime.EventConsoleAPICalled); ok && testing.Verbose() {
			for _, a := range e.Args {
				t.Logf("page: %s", a.Value)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(page, chromedp.Navigate("http://"+sc.gw.app.HTTPAddr()+"/demo/")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(page, chromedp.WaitReady("#signinButton")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the softphone script loaded", func() bool {
		var loaded bool
		sc.page = page
		sc.run(`typeof window.callpathDemo === "object"`, &loaded)
		return loaded
	})
	sc.page = page
	return sc
}

// run evaluates a script, awaiting the promise it returns, and decodes its
// JSON result into out.
func (sc *browserScene) run(script string, out any) {
	sc.t.Helper()
	ctx, cancel := context.WithTimeout(sc.page, 20*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](script, chromedp.EvalAwaitPromise))
	if err != nil {
		sc.t.Fatalf("%s: %v", script, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		sc.t.Fatalf("%s: result %s: %v", script, raw, err)
	}
}

// until polls a boolean expression of the page.
func (sc *browserScene) until(what, expr string, within time.Duration) {
	sc.t.Helper()
	eventually(sc.t, within, what, func() bool {
		var ok bool
		sc.run(expr, &ok)
		return ok
	})
}

// The demo page signs in, calls a SIP phone through callpath and talks:
// the browser's tone reaches the phone, the phone's reaches the browser's
// WebAudio analyser, DTMF from the keypad arrives as RFC 4733; then the
// phone calls the browser, which answers.
func TestBrowserSoftphone(t *testing.T) {
	sc := newBrowserScene(t)
	var status string
	sc.run(`callpathDemo.signIn("`+alice+`").then(() => callpathDemo.status)`, &status)
	if status != "ready" {
		t.Fatalf("after sign-in: %q", status)
	}

	// The browser calls the phone.
	sc.run(`callpathDemo.call("`+bob+`").then(() => callpathDemo.status)`, &status)
	in := sc.phone.NextCall(15 * time.Second)
	sc.rtp.StartTo(t, string(in.Req.Body()))
	if err := in.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	if err := in.Respond(200, "OK", []byte(sc.rtp.SDP())); err != nil {
		t.Fatal(err)
	}
	sc.until("the page shows Connected", `callpathDemo.status === "Connected"`, 15*time.Second)
	sc.rtp.Ear.WaitTone(t, "the phone (the browser's microphone)", 1000, 15*time.Second)
	sc.rtp.ToneOn(true)
	sc.until("the browser hears the phone's 1 kHz", `callpathDemo.hears(1000) > 0.5`, 15*time.Second)
	sc.run(`callpathDemo.dtmf("159#"), true`, new(bool))
	sc.rtp.Ear.WaitDigits(t, "the phone", "159#", 10*time.Second)
	sc.run(`callpathDemo.hangUp().then(() => true)`, new(bool))
	sc.phone.WaitRequest(10*time.Second, siptest.Method(sip.BYE))
	sc.rtp.ToneOn(false)

	// The phone calls the browser.
	caller := siptest.NewPhone(t, "udp")
	callerRTP := mediatest.NewPhone(t, "PCMU")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dlg, err := caller.Dial(ctx, caller.InviteFrom(sc.gw.udp(), bob, alice, []byte(callerRTP.SDP())))
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() { answered <- dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}) }()
	sc.until("the page rings", `callpathDemo.status === "Ringing"`, 15*time.Second)
	sc.run(`callpathDemo.answer().then(() => callpathDemo.status)`, &status)
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	callerRTP.StartTo(t, string(dlg.InviteResponse.Body()))
	callerRTP.Ear.WaitTone(t, "the calling phone", 1000, 15*time.Second)
	callerRTP.ToneOn(true)
	sc.until("the browser hears the caller", `callpathDemo.hears(1000) > 0.5`, 15*time.Second)
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	sc.until("the page shows Terminated", `callpathDemo.status === "Terminated"`, 10*time.Second)
}
