package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"callpath/webrtc/codec"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Directions of a call, for the counters.
const (
	toPhone   = 0 // browser → gateway → phone
	toBrowser = 1 // phone → gateway → browser
)

// result is one run's measurement.
type result struct {
	calls               int
	gwCores             float64 // gateway CPU over the window / wall time
	loadCores           float64
	otherCores          float64 // the rest of the machine: other work disturbs a run
	allocsPerPacket     float64
	allocsPerCallSecond float64
	loss                [2]float64
	latency             [2]*histogram
}

func (r result) callsPerCore() float64 {
	if r.gwCores == 0 {
		return 0
	}
	return float64(r.calls) / r.gwCores
}

// load is the state of one run: the calls and the counters the senders
// and receivers keep.
type load struct {
	codec     string // "pcmu" or "opus"
	measuring atomic.Bool
	start     atomic.Int64 // unix ns the window opened
	sent      [2]atomic.Uint64
	received  [2]atomic.Uint64
	latency   [2]*histogram
	opus      [][]byte // 1 s of a 1 kHz tone in Opus frames (transcode runs)
	pcmuTone  [][]byte // the same in PCMU
	calls     []*call
	wg        sync.WaitGroup
	stop      chan struct{}
}

// call is one call's two ends in the load process.
type call struct {
	pc    *webrtc.PeerConnection
	track *webrtc.TrackLocalStaticRTP
	bconn *net.UDPConn // the plain "browser" of a udprelay run
	bdst  netip.AddrPort
	pconn *net.UDPConn
	pdst  netip.AddrPort
	bseq  uint16
	pseq  uint16
	frame int
}

// run measures one mode ("plane" or "udprelay") with n calls of codec.
func run(cfg runConfig, mode, codecName string, n int) (result, error) {
	g, err := startGateway(cfg.gw, mode)
	if err != nil {
		return result{}, err
	}
	defer g.stop()
	l := &load{codec: codecName, stop: make(chan struct{}), latency: [2]*histogram{newHistogram(), newHistogram()}}
	if codecName == "opus" {
		if l.opus, l.pcmuTone, err = toneFrames(); err != nil {
			return result{}, err
		}
	}
	defer l.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i := range n {
		var c *call
		if mode == "plane" {
			c, err = l.newPlaneCall(ctx, g)
		} else {
			c, err = l.newRelayCall(ctx, g)
		}
		if err != nil {
			return result{}, fmt.Errorf("call %d: %w", i, err)
		}
		l.calls = append(l.calls, c)
	}
	if mode == "plane" {
		if err := l.waitConnected(ctx); err != nil {
			return result{}, err
		}
	}
	l.startSending()
	// The load's own pacing: media flows before the window opens.
	if err := pause(ctx, cfg.warmup); err != nil {
		return result{}, err
	}

	if cfg.profile != "" && mode == "plane" {
		// The gateway (started with -allocwindow) records every allocation
		// from now on, and only from now on.
		var ok map[string]bool
		if err := g.call(ctx, "POST", "/allocs/start", nil, &ok); err != nil {
			return result{}, fmt.Errorf("%w (set MEDIAGW_FLAGS=-allocwindow)", err)
		}
		defer func() {
			// A heap profile shows allocations as of the GC before the
			// last one: two forced GCs make it current.
			for range 2 {
				_ = g.save(ctx, "/debug/pprof/allocs?gc=1", fmt.Sprintf("%s/%s-%d-allocs.pb.gz", cfg.profile, codecName, n))
			}
		}()
	}
	if cfg.cpuProfile != "" && mode == "plane" {
		profiled := make(chan error, 1)
		go func() {
			profiled <- g.save(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(cfg.duration.Seconds())), fmt.Sprintf("%s/%s-%d-cpu.pb.gz", cfg.cpuProfile, codecName, n))
		}()
		defer func() { <-profiled }()
	}
	before, err := g.stats(ctx)
	if err != nil {
		return result{}, err
	}
	loadBefore := selfCPU()
	machineBefore := machineBusy()
	opened := time.Now()
	l.start.Store(opened.UnixNano())
	l.measuring.Store(true)
	if err := pause(ctx, cfg.duration); err != nil { // the measurement window
		return result{}, err
	}
	l.measuring.Store(false)
	wall := time.Since(opened)
	after, err := g.stats(ctx)
	if err != nil {
		return result{}, err
	}
	loadCPU := selfCPU() - loadBefore
	machine := float64(machineBusy()-machineBefore) / float64(wall.Nanoseconds())
	res := result{calls: n, latency: l.latency,
		gwCores:   float64(after.CPUNanos-before.CPUNanos) / float64(wall.Nanoseconds()),
		loadCores: float64(loadCPU) / float64(wall.Nanoseconds()),
	}
	res.otherCores = max(0, machine-res.gwCores-res.loadCores)
	res.allocsPerCallSecond = float64(after.Mallocs-before.Mallocs) / wall.Seconds() / float64(n)
	if packets := after.PacketsOut - before.PacketsOut; packets > 0 {
		res.allocsPerPacket = float64(after.Mallocs-before.Mallocs) / float64(packets)
	}
	for d := range 2 {
		if sent := l.sent[d].Load(); sent > 0 {
			res.loss[d] = max(0, 1-float64(l.received[d].Load())/float64(sent))
		}
	}
	return res, nil
}

// machineBusy is the CPU time all cores spent busy so far (/proc/stat),
// in nanoseconds.
func machineBusy() int64 {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal …
	var busy int64
	for i, f := range fields {
		if i == 0 || i == 4 || i == 5 { // the label, idle, iowait
			continue
		}
		v, _ := strconv.ParseInt(f, 10, 64)
		busy += v
	}
	return busy * int64(time.Second) / 100 // USER_HZ
}

func selfCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// newPlaneCall sets up a pion client and a phone, and one call through
// the media plane between them.
func (l *load) newPlaneCall(ctx context.Context, g *gateway) (*call, error) {
	m := &webrtc.MediaEngine{}
	mime, clock, channels, pt := webrtc.MimeTypePCMU, uint32(8000), uint16(0), webrtc.PayloadType(0)
	if l.codec == "opus" {
		mime, clock, channels, pt = webrtc.MimeTypeOpus, 48000, 2, 111
	}
	capability := webrtc.RTPCodecCapability{MimeType: mime, ClockRate: clock, Channels: channels}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: capability, PayloadType: pt}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	track, err := webrtc.NewTrackLocalStaticRTP(capability, "audio", "load")
	if err != nil {
		return nil, err
	}
	sender, err := pc.AddTrack(track)
	if err != nil {
		return nil, err
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	c := &call{pc: pc, track: track}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		l.wg.Add(1)
		go l.receiveTrack(tr)
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return nil, err
	}
	<-gathered
	if c.pconn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		return nil, err
	}
	phone := c.pconn.LocalAddr().(*net.UDPAddr).AddrPort()
	phoneSDP := fmt.Sprintf("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n", phone.Port())
	var resp struct {
		SIPOffer  string `json:"sip_offer"`
		WebAnswer string `json:"web_answer"`
	}
	if err := g.call(ctx, "POST", "/calls", map[string]string{"browser_offer": pc.LocalDescription().SDP, "phone_sdp": phoneSDP}, &resp); err != nil {
		return nil, err
	}
	if c.pdst, err = audioAddr(resp.SIPOffer); err != nil {
		return nil, err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: resp.WebAnswer}); err != nil {
		return nil, err
	}
	l.wg.Add(1)
	go l.receiveUDP(c.pconn, toPhone)
	return c, nil
}

// newRelayCall sets up a plain UDP "browser" and a phone and one relay
// between them.
func (l *load) newRelayCall(ctx context.Context, g *gateway) (*call, error) {
	c := &call{}
	var err error
	if c.bconn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		return nil, err
	}
	if c.pconn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		return nil, err
	}
	var resp struct{ PortA, PortB int }
	req := map[string]string{"A": c.bconn.LocalAddr().String(), "B": c.pconn.LocalAddr().String()}
	if err := g.call(ctx, "POST", "/relays", req, &resp); err != nil {
		return nil, err
	}
	lo := netip.MustParseAddr("127.0.0.1")
	c.bdst, c.pdst = netip.AddrPortFrom(lo, uint16(resp.PortA)), netip.AddrPortFrom(lo, uint16(resp.PortB))
	l.wg.Add(2)
	go l.receiveUDP(c.bconn, toBrowser)
	go l.receiveUDP(c.pconn, toPhone)
	return c, nil
}

func audioAddr(raw string) (netip.AddrPort, error) {
	var s sdp.SessionDescription
	if err := s.UnmarshalString(raw); err != nil {
		return netip.AddrPort{}, err
	}
	if s.ConnectionInformation == nil || len(s.MediaDescriptions) == 0 {
		return netip.AddrPort{}, fmt.Errorf("no address in %q", raw)
	}
	addr, err := netip.ParseAddr(s.ConnectionInformation.Address.Address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(addr, uint16(s.MediaDescriptions[0].MediaName.Port.Value)), nil
}

// waitConnected waits until every client's ICE and DTLS are up.
func (l *load) waitConnected(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		up := 0
		for _, c := range l.calls {
			if c.pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
				up++
			}
		}
		if up == len(l.calls) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d clients connected: %w", up, len(l.calls), ctx.Err())
		case <-tick.C:
		}
	}
}

// onlyDirection, when 0 or 1, sends in that direction only, when 2 in
// none (diagnosis).
var onlyDirection = -1

// senders are the goroutines pacing the calls' packets: each sends for a
// slice of the calls every 20 ms, the slices 1 ms apart, so that calls are
// spread over the packet interval as independent calls are, rather than
// all sending in one burst.
const senders = 20

func (l *load) startSending() {
	for s := range senders {
		l.wg.Add(1)
		go l.send(s)
	}
}

func (l *load) send(slice int) {
	defer l.wg.Done()
	select {
	case <-l.stop:
		return
	case <-time.After(time.Duration(slice) * 20 * time.Millisecond / senders):
	}
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	buf := make([]byte, 1500)
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = 0xff // µ-law silence after the timestamp
	}
	for {
		select {
		case <-l.stop:
			return
		case <-ticker.C:
		}
		for i := slice; i < len(l.calls); i += senders {
			c := l.calls[i]
			c.frame++
			if onlyDirection < 0 || onlyDirection == toPhone {
				l.sendBrowser(c, buf, payload)
			}
			if onlyDirection < 0 || onlyDirection == toBrowser {
				l.sendPhone(c, buf, payload)
			}
		}
	}
}

// stamp writes the send time into a PCMU payload: the relay does not
// touch payloads, so the receiver reads its one-way latency there.
func stamp(payload []byte) {
	binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
}

func (l *load) count(direction int) {
	if l.measuring.Load() {
		l.sent[direction].Add(1)
	}
}

func (l *load) sendBrowser(c *call, buf, payload []byte) {
	c.bseq++
	if l.codec == "opus" {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: c.bseq, Timestamp: uint32(c.frame) * 960, SSRC: 1},
			Payload: l.opus[c.frame%len(l.opus)]}
		if c.track.WriteRTP(&p) == nil {
			l.count(toPhone)
		}
		return
	}
	stamp(payload)
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: c.bseq, Timestamp: uint32(c.frame) * 160, SSRC: 1}, Payload: payload}
	if c.track != nil {
		if c.track.WriteRTP(&p) == nil {
			l.count(toPhone)
		}
		return
	}
	n, _ := p.MarshalTo(buf)
	if _, err := c.bconn.WriteToUDPAddrPort(buf[:n], c.bdst); err == nil {
		l.count(toPhone)
	}
}

func (l *load) sendPhone(c *call, buf, payload []byte) {
	c.pseq++
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: c.pseq, Timestamp: uint32(c.frame) * 160, SSRC: 2}}
	if l.codec == "opus" {
		p.Payload = l.pcmuTone[c.frame%len(l.pcmuTone)]
	} else {
		stamp(payload)
		p.Payload = payload
	}
	n, _ := p.MarshalTo(buf)
	if _, err := c.pconn.WriteToUDPAddrPort(buf[:n], c.pdst); err == nil {
		l.count(toBrowser)
	}
}

// receiveTrack counts what the plane delivers to a pion client.
func (l *load) receiveTrack(tr *webrtc.TrackRemote) {
	defer l.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		l.received1(buf[:n], toBrowser)
	}
}

// receiveUDP counts what reaches a phone (or a plain browser).
func (l *load) receiveUDP(conn *net.UDPConn, direction int) {
	defer l.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return
		}
		l.received1(buf[:n], direction)
	}
}

func (l *load) received1(pkt []byte, direction int) {
	if !l.measuring.Load() {
		return
	}
	var h rtp.Header
	off, err := h.Unmarshal(pkt)
	if err != nil {
		return
	}
	if l.codec == "opus" {
		l.received[direction].Add(1)
		return
	}
	if len(pkt) < off+8 {
		return
	}
	sentAt := int64(binary.BigEndian.Uint64(pkt[off:]))
	if sentAt < l.start.Load() {
		return // sent before the window: not counted as sent either
	}
	l.received[direction].Add(1)
	l.latency[direction].add(time.Duration(time.Now().UnixNano() - sentAt))
}

func (l *load) close() {
	close(l.stop)
	for _, c := range l.calls {
		if c.pc != nil {
			_ = c.pc.Close()
		}
		if c.bconn != nil {
			_ = c.bconn.Close()
		}
		if c.pconn != nil {
			_ = c.pconn.Close()
		}
	}
	l.wg.Wait()
}

// toneFrames encodes 1 s of a 1 kHz tone into 50 Opus frames and 50 PCMU
// frames, sent in a loop by the transcode runs.
func toneFrames() (opusFrames, pcmuFrames [][]byte, err error) {
	enc, err := codec.NewOpusEncoder(48000)
	if err != nil {
		return nil, nil, err
	}
	pcm48 := make([]int16, 960)
	pcm8 := make([]int16, 160)
	for f := range 50 {
		for i := range pcm48 {
			pcm48[i] = int16(8000 * sin(float64(f*960+i)*1000/48000))
		}
		for i := range pcm8 {
			pcm8[i] = int16(8000 * sin(float64(f*160+i)*1000/8000))
		}
		out := make([]byte, 400)
		n, err := enc.Encode(pcm48, out)
		if err != nil {
			return nil, nil, err
		}
		opusFrames = append(opusFrames, out[:n])
		u := make([]byte, 160)
		codec.EncodeUlaw(u, pcm8)
		pcmuFrames = append(pcmuFrames, u)
	}
	return opusFrames, pcmuFrames, nil
}

// pause waits d, or until ctx (the run's deadline) ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the run's deadline passed: %w", ctx.Err())
	}
}
