package webrtc

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Config is the media plane's configuration, fixed for the Engine's life.
type Config struct {
	// ICEListen is the UDP address every call's ICE, DTLS and SRTP share,
	// e.g. "0.0.0.0:3478". Port 0 picks a free one (tests).
	ICEListen string
	// ICEReadBuffer is the shared ICE socket's receive buffer in bytes
	// (default 4 MiB; the kernel caps it at net.core.rmem_max). Every
	// call's packets queue there for one reader goroutine: the default
	// ~200 KB holds about 15 ms of 300 calls and drops packets when the
	// reader is held up.
	ICEReadBuffer int
	// ICEAdvertise lists the IP addresses written into ICE candidates in
	// place of the local ones (the public address behind a 1:1 NAT). Empty:
	// the local addresses of ICEListen.
	ICEAdvertise []string
	// RTPListenIP is where the SIP leg's UDP ports are bound ("0.0.0.0").
	RTPListenIP string
	// RTPAdvertise is the address written in the SIP leg's SDP (c=).
	// Required when RTPListenIP is unspecified.
	RTPAdvertise string
	// RTPPortMin and RTPPortMax bound the SIP leg's ports: each call takes
	// an even port for RTP and the next one for RTCP. Both zero: ports the
	// system picks, RTCP announced with a=rtcp (tests).
	RTPPortMin, RTPPortMax int
	// MediaTimeout ends a call when a leg that should send RTP sent none for
	// this long (default 30 s; negative: never).
	MediaTimeout time.Duration
	// ConnectTimeout ends a call whose WebRTC leg has not completed ICE and
	// DTLS this long after its offer and answer met (default 10 s).
	ConnectTimeout time.Duration
	// Codecs orders the G.711 codecs offered to SIP peers ("PCMU", "PCMA";
	// default both, PCMU first).
	Codecs []string
	// DisableOpus keeps Opus off the WebRTC leg even in a build that can
	// transcode it.
	DisableOpus bool
	// RTCPInterval is how often each leg gets our RTCP report (default 5 s,
	// RFC 3550 §6.2's minimum for two parties).
	RTCPInterval time.Duration
	// Ptime is the packetisation interval announced and used when
	// transcoding, in milliseconds (default 20).
	Ptime int
	// Log receives the plane's log lines; nil discards them.
	Log *logrus.Entry
	// Metrics receives measurements; nil keeps none.
	Metrics Metrics
}

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("media config")

// withDefaults fills the zero values and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.ICEListen == "" {
		return c, fmt.Errorf("%w: ice listen address is required", ErrConfig)
	}
	if _, err := netip.ParseAddrPort(c.ICEListen); err != nil {
		return c, fmt.Errorf("%w: ice listen %q: %w", ErrConfig, c.ICEListen, err)
	}
	for _, a := range c.ICEAdvertise {
		if _, err := netip.ParseAddr(a); err != nil {
			return c, fmt.Errorf("%w: ice advertise %q: %w", ErrConfig, a, err)
		}
	}
	if c.ICEReadBuffer == 0 {
		c.ICEReadBuffer = 4 << 20
	}
	if c.RTPListenIP == "" {
		c.RTPListenIP = "0.0.0.0"
	}
	listen, err := netip.ParseAddr(c.RTPListenIP)
	if err != nil {
		return c, fmt.Errorf("%w: rtp listen ip %q: %w", ErrConfig, c.RTPListenIP, err)
	}
	if c.RTPAdvertise == "" {
		if listen.IsUnspecified() {
			return c, fmt.Errorf("%w: rtp advertise address is required when listening on %s", ErrConfig, listen)
		}
		c.RTPAdvertise = c.RTPListenIP
	}
	if _, err := netip.ParseAddr(c.RTPAdvertise); err != nil {
		return c, fmt.Errorf("%w: rtp advertise %q: %w", ErrConfig, c.RTPAdvertise, err)
	}
	switch {
	case c.RTPPortMin == 0 && c.RTPPortMax == 0:
	case c.RTPPortMin < 1024 || c.RTPPortMax > 65535 || c.RTPPortMax < c.RTPPortMin+1:
		return c, fmt.Errorf("%w: rtp port range %d-%d", ErrConfig, c.RTPPortMin, c.RTPPortMax)
	}
	if c.MediaTimeout == 0 {
		c.MediaTimeout = 30 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if len(c.Codecs) == 0 {
		c.Codecs = []string{codecPCMU, codecPCMA}
	}
	c.Codecs = append([]string(nil), c.Codecs...) // the caller's slice stays as it was
	for i, name := range c.Codecs {
		switch strings.ToUpper(name) {
		case codecPCMU, codecPCMA:
			c.Codecs[i] = strings.ToUpper(name)
		default:
			return c, fmt.Errorf("%w: codec %q: the SIP leg carries PCMU and PCMA", ErrConfig, name)
		}
	}
	if c.RTCPInterval <= 0 {
		c.RTCPInterval = 5 * time.Second
	}
	if c.Ptime == 0 {
		c.Ptime = 20
	}
	if c.Ptime%10 != 0 || c.Ptime > 60 {
		return c, fmt.Errorf("%w: ptime %d: 10, 20, 30, 40, 50 or 60 ms", ErrConfig, c.Ptime)
	}
	if c.Log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		c.Log = logrus.NewEntry(l)
	}
	if c.Metrics == nil {
		c.Metrics = noMetrics{}
	}
	return c, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
