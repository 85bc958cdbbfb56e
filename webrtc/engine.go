package webrtc

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/pion/dtls/v3/pkg/crypto/fingerprint"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/ice/v4"
	pion "github.com/pion/webrtc/v4"
	"github.com/sirupsen/logrus"
)

// Engine is the media plane of one gateway: the ICE port all WebRTC legs
// share, the SIP legs' port range, and the sessions in progress. Create it
// once; Close it last.
type Engine struct {
	cfg      Config
	log      *logrus.Entry
	metrics  Metrics
	settings pion.SettingEngine
	iceConn  net.PacketConn
	iceMux   ice.UDPMux
	ports    *portAllocator
	rtpAddr  netip.Addr // advertised on the SIP leg
	// cert is the SIP leg's DTLS certificate (self-signed, made at start),
	// fingerprint its a=fingerprint value.
	cert        tls.Certificate
	fingerprint string

	mu       sync.Mutex
	sessions map[*Session]struct{}
	closed   bool
}

// NewEngine opens the ICE port and prepares the RTP port range.
func NewEngine(ctx context.Context, cfg Config) (*Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, log: cfg.Log, metrics: cfg.Metrics, sessions: map[*Session]struct{}{}}
	e.rtpAddr = netip.MustParseAddr(cfg.RTPAdvertise)
	if e.cert, e.fingerprint, err = newDTLSCertificate(); err != nil {
		return nil, err
	}
	e.ports = newPortAllocator(netip.MustParseAddr(cfg.RTPListenIP), cfg.RTPPortMin, cfg.RTPPortMax)

	iceAddr := netip.MustParseAddrPort(cfg.ICEListen)
	var lc net.ListenConfig
	conn, err := lc.ListenPacket(ctx, "udp", iceAddr.String())
	if err != nil {
		return nil, fmt.Errorf("media: ice port %s: %w", cfg.ICEListen, err)
	}
	e.iceConn = conn
	if udp, ok := conn.(*net.UDPConn); ok && cfg.ICEReadBuffer > 0 {
		if err := udp.SetReadBuffer(cfg.ICEReadBuffer); err != nil {
			e.log.WithError(err).Warn("media: ice socket receive buffer")
		}
	}
	logs := pionLogs{cfg.Log}
	e.iceMux = pion.NewICEUDPMux(logs.NewLogger("udpmux"), conn)

	s := pion.SettingEngine{LoggerFactory: logs}
	// A server with a known address needs no candidate gathering or checks
	// of its own: ICE-lite (RFC 8445 §2.5), answering the browser's checks
	// on the one shared port.
	s.SetLite(true)
	s.SetICEUDPMux(e.iceMux)
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if iceAddr.Addr().Is4() {
		s.SetNetworkTypes([]pion.NetworkType{pion.NetworkTypeUDP4})
	} else {
		s.SetNetworkTypes([]pion.NetworkType{pion.NetworkTypeUDP6})
	}
	if iceAddr.Addr().IsLoopback() {
		s.SetIncludeLoopbackCandidate(true)
	}
	if len(cfg.ICEAdvertise) > 0 {
		if err := s.SetICEAddressRewriteRules(pion.ICEAddressRewriteRule{
			External: cfg.ICEAdvertise, AsCandidateType: pion.ICECandidateTypeHost, Mode: pion.ICEAddressRewriteReplace,
		}); err != nil {
			_ = e.iceMux.Close()
			return nil, fmt.Errorf("%w: ice advertise: %w", ErrConfig, err)
		}
	}
	e.settings = s
	return e, nil
}

// ICEAddr is the address the shared ICE port is bound to.
func (e *Engine) ICEAddr() net.Addr { return e.iceConn.LocalAddr() }

// Close ends every session (reason ErrClosed, no OnEnd) and closes the ICE
// port. Sessions created afterwards fail with ErrClosed.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	sessions := make([]*Session, 0, len(e.sessions))
	for s := range e.sessions {
		sessions = append(sessions, s)
	}
	e.mu.Unlock()
	var firstErr error
	for _, s := range sessions {
		if err := s.Close(ctx); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if err := e.iceMux.Close(); err != nil && firstErr == nil {
		firstErr = fmt.Errorf("media: closing the ice port: %w", err)
	}
	return firstErr
}

// Sessions is the number of sessions not yet ended.
func (e *Engine) Sessions() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sessions)
}

func (e *Engine) forget(s *Session) {
	e.mu.Lock()
	delete(e.sessions, s)
	e.mu.Unlock()
}

// newDTLSCertificate makes the SIP leg's self-signed DTLS certificate and
// its SHA-256 fingerprint for SDP (RFC 8122 §5).
func newDTLSCertificate() (tls.Certificate, string, error) {
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		return cert, "", fmt.Errorf("media: dtls certificate: %w", err)
	}
	x, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return cert, "", fmt.Errorf("media: dtls certificate: %w", err)
	}
	fp, err := fingerprint.Fingerprint(x, crypto.SHA256)
	if err != nil {
		return cert, "", fmt.Errorf("media: dtls fingerprint: %w", err)
	}
	return cert, "sha-256 " + fp, nil
}

// randomUint32 is for SSRCs and initial sequence numbers and timestamps
// (RFC 3550 §5.1: random, so that streams are hard to guess into).
func randomUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}
