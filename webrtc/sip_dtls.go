package webrtc

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/fingerprint"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/transport/v4/deadline"
)

// sipDTLS is DTLS-SRTP on the SIP leg, toward a TAS whose registration or
// trunk asks for "WebRTC style" media (DESIGN §4; RFC 5763, RFC 5764): the
// handshake runs over the leg's RTP port, told apart from RTP by its first
// byte (RFC 7983), the peer is checked against its SDP fingerprint, and
// the exported keys protect RTP and RTCP both ways. No ICE: the TAS is
// reached at its SDP address, or at the address latching learns.
type sipDTLS struct {
	leg         *sipLeg
	client      bool   // we start the handshake (our a=setup is active)
	fingerprint string // the peer's a=fingerprint: "sha-256 AB:CD:…"

	started atomic.Bool
	ready   atomic.Bool
	in      chan []byte // DTLS records picked out of the socket by the reader
	pc      *dtlsPacketConn

	// Each SRTP context and buffer belongs to one goroutine: encRTP to the
	// browser→SIP path, decRTP to the SIP reader; the RTCP ones, used
	// every few seconds from several goroutines, take rtcpMu.
	encRTP    *srtp.Context
	encHeader rtp.Header
	encBuf    []byte
	decRTP    *srtp.Context
	decHeader rtp.Header
	rtcpMu    sync.Mutex
	encRTCP   *srtp.Context
	decRTCP   *srtp.Context
}

// The SDP transport of DTLS-SRTP (RFC 5764 §8).
const protoDTLS = "UDP/TLS/RTP/SAVP"

func newSIPDTLS(leg *sipLeg, client bool, peerFingerprint string) *sipDTLS {
	return &sipDTLS{leg: leg, client: client, fingerprint: peerFingerprint, in: make(chan []byte, 16), encBuf: make([]byte, 1500)}
}

// setup is our a=setup for the role.
func (d *sipDTLS) setup() string {
	if d.client {
		return "active"
	}
	return "passive"
}

// isDTLS tells a DTLS record from RTP/RTCP (20-63) and STUN (0-3) on a
// shared port (RFC 7983 §7).
func isDTLS(pkt []byte) bool { return len(pkt) > 0 && pkt[0] >= 20 && pkt[0] <= 63 }

// deliver hands a DTLS record from src to the handshake, starting it as
// the server on the first ClientHello when we are not the client. Records
// from other hosts than the SDP's are dropped: a stranger could otherwise
// make the handshake go to it (and fail on the fingerprint).
func (d *sipDTLS) deliver(pkt []byte, src netip.AddrPort) {
	if sdp := d.leg.sdpRemote.Load(); sdp == nil || sdp.rtp.Addr() != src.Addr() {
		return
	}
	if !d.client && d.started.CompareAndSwap(false, true) {
		d.leg.s.spawn(func() { d.run(src) })
	}
	select {
	case d.in <- append([]byte(nil), pkt...):
	default: // a flood of records: the handshake retransmits what it needs
	}
}

// start begins the handshake as the client, toward the peer's SDP address.
func (d *sipDTLS) start() {
	if !d.client || !d.started.CompareAndSwap(false, true) {
		return
	}
	remote := d.leg.sdpRemote.Load()
	if remote == nil {
		return
	}
	d.leg.s.spawn(func() { d.run(remote.rtp) })
}

// run performs the handshake with the peer at remote, derives the SRTP
// contexts, then reads the connection until it closes (the peer may
// retransmit its last flight, or send an alert).
func (d *sipDTLS) run(remote netip.AddrPort) {
	s := d.leg.s
	d.pc = &dtlsPacketConn{leg: d.leg, in: d.in, remote: remote, readDeadline: deadline.New(), closed: make(chan struct{})}
	opts := []dtls.Option{
		dtls.WithCertificates(s.eng.cert),
		dtls.WithSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		dtls.WithInsecureSkipVerify(true), // self-signed: the SDP fingerprint is the check
		dtls.WithVerifyPeerCertificate(d.verify),
		dtls.WithLoggerFactory(pionLogs{s.log}),
	}
	addr := net.UDPAddrFromAddrPort(remote)
	var conn *dtls.Conn
	var err error
	if d.client {
		conn, err = dtls.ClientWithOptions(d.pc, addr, clientOptions(opts)...)
	} else {
		conn, err = dtls.ServerWithOptions(d.pc, addr, serverOptions(opts)...)
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.eng.cfg.ConnectTimeout)
		go func() { // the session's end stops the handshake
			select {
			case <-s.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		err = conn.HandshakeContext(ctx)
		cancel()
		if err == nil {
			err = d.keys(conn)
		}
	}
	if err != nil {
		if conn != nil {
			_ = conn.Close()
		}
		_ = d.pc.Close()
		select {
		case <-s.done: // closed meanwhile: not a failure
		default:
			s.eng.metrics.SetupFailed("sip_dtls")
			s.end(fmt.Errorf("%w: sip leg: %w", ErrDTLSFailed, err))
		}
		return
	}
	d.ready.Store(true)
	s.log.WithField("remote", remote.String()).Debug("media: sip leg dtls-srtp up")
	go func() {
		<-s.done
		_ = conn.Close() // sends close_notify
		_ = d.pc.Close()
	}()
	buf := make([]byte, 1500)
	for {
		if _, err := conn.Read(buf); err != nil {
			return
		}
	}
}

// keys derives the four SRTP contexts from the handshake (RFC 5764 §4.2).
func (d *sipDTLS) keys(conn *dtls.Conn) error {
	selected, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return errors.New("no srtp protection profile agreed")
	}
	var profile srtp.ProtectionProfile
	switch selected {
	case dtls.SRTP_AEAD_AES_128_GCM:
		profile = srtp.ProtectionProfileAeadAes128Gcm
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		profile = srtp.ProtectionProfileAes128CmHmacSha1_80
	default:
		return fmt.Errorf("srtp protection profile %#x", selected)
	}
	state, ok := conn.ConnectionState()
	if !ok {
		return errors.New("no dtls connection state")
	}
	cfg := srtp.Config{Profile: profile}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, d.client); err != nil {
		return fmt.Errorf("srtp keys: %w", err)
	}
	k := cfg.Keys
	contexts := make([]*srtp.Context, 4)
	for i, key := range [][2][]byte{{k.LocalMasterKey, k.LocalMasterSalt}, {k.LocalMasterKey, k.LocalMasterSalt}, {k.RemoteMasterKey, k.RemoteMasterSalt}, {k.RemoteMasterKey, k.RemoteMasterSalt}} {
		c, err := srtp.CreateContext(key[0], key[1], profile)
		if err != nil {
			return fmt.Errorf("srtp context: %w", err)
		}
		contexts[i] = c
	}
	d.encRTP, d.encRTCP, d.decRTP, d.decRTCP = contexts[0], contexts[1], contexts[2], contexts[3]
	return nil
}

// verify checks the peer's certificate against the SDP's fingerprint.
func (d *sipDTLS) verify(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) == 0 {
		return errors.New("no certificate")
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return err
	}
	algorithm, value, ok := strings.Cut(strings.TrimSpace(d.fingerprint), " ")
	if !ok {
		return fmt.Errorf("sdp fingerprint %q", d.fingerprint)
	}
	hash, err := fingerprint.HashFromString(algorithm)
	if err != nil {
		return err
	}
	got, err := fingerprint.Fingerprint(cert, hash)
	if err != nil {
		return err
	}
	if !strings.EqualFold(got, strings.TrimSpace(value)) {
		return errors.New("certificate does not match the sdp fingerprint")
	}
	return nil
}

// protect encrypts one RTP packet for the peer (browser→SIP goroutine).
func (d *sipDTLS) protect(pkt []byte) ([]byte, bool) {
	if !d.ready.Load() {
		return nil, false
	}
	out, err := d.encRTP.EncryptRTP(d.encBuf, pkt, &d.encHeader)
	return out, err == nil
}

// unprotect decrypts one SRTP packet in place (SIP reader goroutine); it
// fails for anything not sent by the authenticated peer.
func (d *sipDTLS) unprotect(pkt []byte) ([]byte, bool) {
	if !d.ready.Load() {
		return nil, false
	}
	out, err := d.decRTP.DecryptRTP(pkt, pkt, &d.decHeader)
	return out, err == nil
}

func (d *sipDTLS) protectRTCP(pkt []byte) ([]byte, bool) {
	if !d.ready.Load() {
		return nil, false
	}
	d.rtcpMu.Lock()
	defer d.rtcpMu.Unlock()
	out, err := d.encRTCP.EncryptRTCP(nil, pkt, nil)
	return out, err == nil
}

func (d *sipDTLS) unprotectRTCP(pkt []byte) ([]byte, bool) {
	if !d.ready.Load() {
		return nil, false
	}
	d.rtcpMu.Lock()
	defer d.rtcpMu.Unlock()
	out, err := d.decRTCP.DecryptRTCP(nil, pkt, &rtcp.Header{})
	return out, err == nil
}

// dtlsPacketConn is the net.PacketConn pion/dtls runs over: records the
// SIP leg's reader picked out of the socket come in, records for the peer
// go out of the same socket.
type dtlsPacketConn struct {
	leg          *sipLeg
	in           chan []byte
	remote       netip.AddrPort
	readDeadline *deadline.Deadline
	closeOnce    sync.Once
	closed       chan struct{}
}

func (c *dtlsPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p := <-c.in:
		return copy(b, p), net.UDPAddrFromAddrPort(c.remote), nil
	case <-c.readDeadline.Done():
		return 0, nil, os.ErrDeadlineExceeded
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *dtlsPacketConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	return c.leg.ports.rtp.WriteToUDPAddrPort(b, c.remote)
}

func (c *dtlsPacketConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *dtlsPacketConn) LocalAddr() net.Addr { return c.leg.ports.rtp.LocalAddr() }

func (c *dtlsPacketConn) SetDeadline(t time.Time) error {
	c.readDeadline.Set(t)
	return nil
}

func (c *dtlsPacketConn) SetReadDeadline(t time.Time) error {
	c.readDeadline.Set(t)
	return nil
}

func (c *dtlsPacketConn) SetWriteDeadline(time.Time) error { return nil }

func clientOptions(opts []dtls.Option) []dtls.ClientOption {
	out := make([]dtls.ClientOption, 0, len(opts))
	for _, o := range opts {
		out = append(out, o)
	}
	return out
}

// serverOptions also makes the server ask for the client's certificate:
// without it there is no fingerprint to check.
func serverOptions(opts []dtls.Option) []dtls.ServerOption {
	out := make([]dtls.ServerOption, 0, len(opts)+1)
	for _, o := range opts {
		out = append(out, o)
	}
	return append(out, dtls.WithClientAuth(dtls.RequireAnyClientCert))
}
