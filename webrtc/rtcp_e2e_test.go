package webrtc_test

import (
	"strconv"
	"testing"
	"time"

	"callpath/internal/mediatest"
	"callpath/webrtc"
)

// Both legs get the plane's RTCP reports and their peers' reports reach
// the loss/jitter metrics: the phone (RTCP multiplexed on its RTP port)
// gets sender reports and answers them, the browser gets receiver reports
// about its stream and sends its own.
func TestRTCPReportsOnBothLegs(t *testing.T) {
	mediatest.CheckGoroutines(t)
	m := newRecordingMetrics()
	eng := newEngine(t, m, func(c *webrtc.Config) { c.RTCPInterval = 200 * time.Millisecond })
	s := newSession(t, eng, newCallEvents())
	browser := mediatest.NewBrowser(t, "PCMU")
	phone := mediatest.NewPhone(t, "PCMU")
	phone.RTCPMux = true
	browserCallsPhone(t, s, browser, phone, "PCMU")
	browser.ToneOn(true)
	phone.Ear.WaitTone(t, "the phone", 1000, 10*time.Second)
	mediatest.Eventually(t, 10*time.Second, func() (bool, string) {
		return phone.RTCPReports() >= 2 && browser.ReceiverReports() >= 2 && m.get(m.reports, "sip") >= 2 && m.get(m.reports, "webrtc") >= 1,
			"phone got " + strconv.Itoa(phone.RTCPReports()) + " SRs, browser " + strconv.Itoa(browser.ReceiverReports()) + " RRs, metrics " +
				strconv.Itoa(m.get(m.reports, "sip")) + " sip / " + strconv.Itoa(m.get(m.reports, "webrtc")) + " webrtc"
	}, "RTCP flows on both legs")
}
