package webrtc_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"callpath/internal/mediatest"
	"callpath/webrtc"
	"callpath/webrtc/codec"

	"github.com/pion/rtp"
)

// A phone behind NAT announces an address it does not send from: the
// plane learns the real one from the phone's packets and sends there.
func TestLatchingOntoNATedPhone(t *testing.T) {
	mediatest.CheckGoroutines(t)
	eng := newEngine(t, nil, nil)
	s := newSession(t, eng, newCallEvents())
	browser := mediatest.NewBrowser(t, "PCMU")
	phone := mediatest.NewPhone(t, "PCMU")
	phone.BehindNAT(t)
	browserCallsPhone(t, s, browser, phone, "PCMU")
	browser.ToneOn(true)
	phone.Ear.WaitTone(t, "the NATed phone", 1000, 10*time.Second)
	if info := s.Info(); !info.Latched || info.SIPRemote != phone.Addr() {
		t.Fatalf("info %+v, phone at %v", info, phone.Addr())
	}
}

// Once latched, packets from other sources (a flood of well-formed RTP
// with a 2 kHz tone, and garbage) are dropped: the browser keeps hearing
// the phone's 1 kHz and never the flood.
func TestRTPFloodFromUnknownSourceIsIgnored(t *testing.T) {
	mediatest.CheckGoroutines(t)
	m := newRecordingMetrics()
	eng := newEngine(t, m, nil)
	s := newSession(t, eng, newCallEvents())
	browser := mediatest.NewBrowser(t, "PCMU")
	phone := mediatest.NewPhone(t, "PCMU")
	browserCallsPhone(t, s, browser, phone, "PCMU")
	phone.ToneOn(true)
	browser.Ear.WaitTone(t, "the browser", 1000, 10*time.Second)
	mediatest.Eventually(t, 5*time.Second, func() (bool, string) { return s.Info().Latched, "not latched" }, "latched")

	attacker, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.Info().SIPLocal))
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	tone := mediatest.Tone{Freq: 2000, Rate: 8000, Amplitude: 16000}
	pcm := make([]int16, 160)
	before := s.Info().SIPPackets
	const flood = 3000
	for i := range flood {
		tone.Fill(pcm)
		payload := make([]byte, 160)
		codec.EncodeUlaw(payload, pcm)
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i), Timestamp: uint32(i * 160), SSRC: 666}, Payload: payload}
		b, _ := pkt.Marshal()
		if i%10 == 0 {
			b = []byte("garbage that is not RTP")
		}
		_, _ = attacker.Write(b)
	}
	mediatest.Eventually(t, 5*time.Second, func() (bool, string) {
		got := m.get(m.dropped, "sip/unknown_source") + m.get(m.dropped, "sip/malformed")
		// UDP may lose part of a burst this fast in the socket buffer; a
		// third arriving is plenty to show the reader saw and dropped it.
		return got >= flood/3, "dropped so far: " + strconv.Itoa(got)
	}, "the flood is dropped")
	if m.get(m.dropped, "sip/malformed") == 0 {
		t.Errorf("garbage not counted as malformed: %v", m.dropped)
	}
	if got := s.Info().SIPPackets - before; got > 500 {
		t.Errorf("%d packets accepted from the SIP side during the flood", got)
	}
	if ok, why := browser.Ear.Hears(2000); ok {
		t.Fatalf("the browser hears the flood: %s", why)
	}
	browser.Ear.WaitTone(t, "the browser, after the flood", 1000, 5*time.Second)
}

// A phone that stops sending ends the call after the media timeout.
func TestMediaTimeoutEndsTheCall(t *testing.T) {
	mediatest.CheckGoroutines(t)
	m := newRecordingMetrics()
	eng := newEngine(t, m, func(c *webrtc.Config) { c.MediaTimeout = 600 * time.Millisecond })
	ev := newCallEvents()
	s := newSession(t, eng, ev)
	browser := mediatest.NewBrowser(t, "PCMU")
	phone := mediatest.NewPhone(t, "PCMU")
	browserCallsPhone(t, s, browser, phone, "PCMU")
	phone.ToneOn(true)
	browser.Ear.WaitTone(t, "the browser", 1000, 10*time.Second)
	select {
	case reason := <-ev.ended:
		t.Fatalf("ended while media flowed: %v", reason)
	default:
	}
	stopped := time.Now()
	phone.Pause()
	if took := ev.waitEnd(t, webrtc.ErrMediaTimeout, 10*time.Second, "the phone went silent").Sub(stopped); took < 500*time.Millisecond || took > 3*time.Second {
		t.Errorf("ended %v after the phone went silent, timeout 600ms", took)
	}
	mediatest.Eventually(t, 5*time.Second, func() (bool, string) {
		return m.get(m.ended, "media_timeout") == 1, "not counted"
	}, "the end is counted")
}

// Early media: the 183's answer sets the call up; the 200 repeating it
// changes nothing; a 200 from another fork moves the SIP leg there.
func TestEarlyMediaThenAnotherForkAnswers(t *testing.T) {
	mediatest.CheckGoroutines(t)
	eng := newEngine(t, nil, nil)
	s := newSession(t, eng, newCallEvents())
	browser := mediatest.NewBrowser(t, "PCMU")
	first := mediatest.NewPhone(t, "PCMU")
	_, webAnswer := browserCallsPhone(t, s, browser, first, "PCMU")
	again, err := s.AnswerFromSIP(context.Background(), first.SDP())
	if err != nil || again != webAnswer {
		t.Fatalf("the 200 repeating the 183: %v, same answer %v", err, again == webAnswer)
	}
	browser.ToneOn(true)
	first.Ear.WaitTone(t, "the early-media phone", 1000, 10*time.Second)

	second := mediatest.NewPhone(t, "PCMU")
	second.Start(s.Info().SIPLocal)
	if _, err := s.AnswerFromSIP(context.Background(), second.SDP()); err != nil {
		t.Fatal(err)
	}
	first.Pause()
	second.Ear.WaitTone(t, "the answering fork", 1000, 10*time.Second)
	second.ToneOn(true)
	browser.Ear.WaitTone(t, "the browser, from the answering fork", 1000, 10*time.Second)
	if info := s.Info(); info.SIPRemote != second.Addr() {
		t.Errorf("SIP leg sends to %v, the fork is at %v", info.SIPRemote, second.Addr())
	}
	// A third fork answers in A-law, which the browser does not have: the
	// relay converts the law both ways.
	second.Pause()
	pcma := mediatest.NewPhone(t, "PCMA")
	pcma.Start(s.Info().SIPLocal)
	if _, err := s.AnswerFromSIP(context.Background(), pcma.SDP()); err != nil {
		t.Fatalf("a fork answering in A-law: %v", err)
	}
	// Silence must stay silence: a code word taken for the other law's
	// is loud (µ-law's silence read as A-law is about 700 rms).
	browser.ToneOn(false)
	mediatest.Eventually(t, 10*time.Second, pcma.Ear.Silent, "the A-law fork hears the browser's silence")
	browser.ToneOn(true)
	pcma.Ear.WaitTone(t, "the A-law fork", 1000, 10*time.Second)
	mediatest.Eventually(t, 10*time.Second, browser.Ear.Silent, "the browser hears the A-law fork's silence")
	pcma.ToneOn(true)
	browser.Ear.WaitTone(t, "the browser, from the A-law fork", 1000, 10*time.Second)
}

// A SIP callee ringing after its 183 without sending anything is not
// timed out: a leg is timed from its first packet.
func TestSilentRingingIsNotTimedOut(t *testing.T) {
	mediatest.CheckGoroutines(t)
	eng := newEngine(t, nil, func(c *webrtc.Config) { c.MediaTimeout = 300 * time.Millisecond })
	ev := newCallEvents()
	s := newSession(t, eng, ev)
	browser := mediatest.NewBrowser(t, "PCMU")
	phone := mediatest.NewPhone(t, "PCMU")
	sipOffer := browserCallsSilentPhone(t, s, browser, phone)
	browser.ToneOn(true)
	select {
	case reason := <-ev.ended:
		t.Fatalf("a silent ringing callee ended the call: %v", reason)
	case <-time.After(5 * 300 * time.Millisecond):
	}
	// Answered: the callee's media starts, then stops: now it is timed.
	phone.StartTo(t, sipOffer)
	mediatest.Eventually(t, 5*time.Second, func() (bool, string) {
		return s.Info().SIPPackets > 10, "no packets from the phone"
	}, "the callee's media arrives")
	phone.Pause()
	ev.waitEnd(t, webrtc.ErrMediaTimeout, 10*time.Second, "the callee went silent")
}

// Once the call is answered, a callee that never sends anything is timed
// out as well: silence is no longer ringing.
func TestAnsweredSilentCalleeIsTimedOut(t *testing.T) {
	mediatest.CheckGoroutines(t)
	eng := newEngine(t, nil, func(c *webrtc.Config) { c.MediaTimeout = 300 * time.Millisecond })
	ev := newCallEvents()
	s := newSession(t, eng, ev)
	browser := mediatest.NewBrowser(t, "PCMU")
	phone := mediatest.NewPhone(t, "PCMU")
	browserCallsSilentPhone(t, s, browser, phone)
	browser.ToneOn(true)
	s.Answered()
	ev.waitEnd(t, webrtc.ErrMediaTimeout, 10*time.Second, "an answered callee that never sent anything")
}
