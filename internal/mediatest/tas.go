package mediatest

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/fingerprint"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
)

// NewSecurePhone is a Phone speaking DTLS-SRTP (UDP/TLS/RTP/SAVP with
// RTCP-mux), standing for a TAS that asks for "WebRTC style" media. setup
// is its a=setup ("active": it starts the handshake; "actpass" in an
// offer, "passive"). Call Handshake once the other side's SDP is known.
func NewSecurePhone(t testing.TB, codecName, setup string) *Phone {
	t.Helper()
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	fp, err := fingerprint.Fingerprint(x, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return newPhone(t, codecName, &phoneDTLS{cert: cert, fingerprint: "sha-256 " + fp, setup: setup, in: make(chan []byte, 64), closed: make(chan struct{})})
}

// Handshake runs DTLS with the other side, whose SDP is peerSDP, at
// remote: as client when the phone's setup is active (or the other side's
// is passive). It returns when the keys are there, or the error.
func (p *Phone) Handshake(peerSDP string, remote netip.AddrPort) error {
	d := p.secure
	peerFP, peerSetup, err := dtlsAttributes(peerSDP)
	if err != nil {
		return err
	}
	client := d.setup == "active" || (d.setup == "actpass" && peerSetup == "passive")
	return d.handshake(client, peerFP, remote)
}

// dtlsAttributes reads a=fingerprint and a=setup out of an SDP.
func dtlsAttributes(raw string) (fp, setup string, err error) {
	var s sdp.SessionDescription
	if err := s.UnmarshalString(raw); err != nil {
		return "", "", err
	}
	attrs := s.Attributes
	for _, m := range s.MediaDescriptions {
		attrs = append(attrs, m.Attributes...)
	}
	for _, a := range attrs {
		switch a.Key {
		case "fingerprint":
			fp = a.Value
		case "setup":
			setup = a.Value
		}
	}
	if fp == "" {
		return "", "", errors.New("no a=fingerprint")
	}
	return fp, setup, nil
}

// phoneDTLS is the phone's DTLS-SRTP: the handshake over its one socket
// and the SRTP contexts it yields.
type phoneDTLS struct {
	cert        tls.Certificate
	fingerprint string
	setup       string
	conn        *net.UDPConn
	in          chan []byte
	remote      netip.AddrPort
	dtls        *dtls.Conn
	ready       atomic.Bool
	mu          sync.Mutex // the phone's send and receive loops share the contexts
	enc, dec    *srtp.Context
	closeOnce   sync.Once
	closed      chan struct{}
}

func (d *phoneDTLS) handshake(client bool, peerFP string, remote netip.AddrPort) error {
	d.remote = remote
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		cert, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return err
		}
		got, err := fingerprint.Fingerprint(cert, crypto.SHA256)
		if err != nil {
			return err
		}
		if want := strings.TrimPrefix(peerFP, "sha-256 "); !strings.EqualFold(got, want) {
			return fmt.Errorf("fingerprint %s, SDP says %s", got, want)
		}
		return nil
	}
	opts := []dtls.Option{
		dtls.WithCertificates(d.cert),
		dtls.WithSRTPProtectionProfiles(dtls.SRTP_AES128_CM_HMAC_SHA1_80),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		dtls.WithInsecureSkipVerify(true),
		dtls.WithVerifyPeerCertificate(verify),
	}
	pc := &chanPacketConn{d: d}
	var conn *dtls.Conn
	var err error
	if client {
		conn, err = dtls.ClientWithOptions(pc, net.UDPAddrFromAddrPort(remote), clientOptions(opts)...)
	} else {
		conn, err = dtls.ServerWithOptions(pc, net.UDPAddrFromAddrPort(remote), serverOptions(opts)...)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		return err
	}
	state, _ := conn.ConnectionState()
	keys := srtp.Config{Profile: srtp.ProtectionProfileAes128CmHmacSha1_80}
	if err := keys.ExtractSessionKeysFromDTLS(&state, client); err != nil {
		return err
	}
	d.enc, err = srtp.CreateContext(keys.Keys.LocalMasterKey, keys.Keys.LocalMasterSalt, keys.Profile)
	if err != nil {
		return err
	}
	d.dec, err = srtp.CreateContext(keys.Keys.RemoteMasterKey, keys.Keys.RemoteMasterSalt, keys.Profile)
	if err != nil {
		return err
	}
	d.dtls = conn
	d.ready.Store(true)
	go func() { // answer retransmissions and alerts until closed
		buf := make([]byte, 1500)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	}()
	return nil
}

func (d *phoneDTLS) deliver(pkt []byte) {
	select {
	case d.in <- append([]byte(nil), pkt...):
	default:
	}
}

func (d *phoneDTLS) protect(pkt []byte) []byte {
	if !d.ready.Load() {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out, err := d.enc.EncryptRTP(nil, pkt, nil)
	if err != nil {
		return nil
	}
	return out
}

func (d *phoneDTLS) protectRTCP(pkt []byte) []byte {
	if !d.ready.Load() {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out, err := d.enc.EncryptRTCP(nil, pkt, nil)
	if err != nil {
		return nil
	}
	return out
}

// unprotect decrypts an SRTP or SRTCP packet, nil if it does not
// authenticate.
func (d *phoneDTLS) unprotect(pkt []byte) []byte {
	if !d.ready.Load() {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []byte
	var err error
	if len(pkt) >= 2 && pkt[1] >= 200 && pkt[1] <= 204 {
		out, err = d.dec.DecryptRTCP(nil, pkt, &rtcp.Header{})
	} else {
		out, err = d.dec.DecryptRTP(nil, pkt, nil)
	}
	if err != nil {
		return nil
	}
	return out
}

func (d *phoneDTLS) close() {
	d.closeOnce.Do(func() { close(d.closed) })
	if d.dtls != nil {
		_ = d.dtls.Close()
	}
}

// chanPacketConn feeds pion/dtls the records the phone's receive loop
// picked out of its socket.
type chanPacketConn struct {
	d        *phoneDTLS
	mu       sync.Mutex
	deadline time.Time
}

func (c *chanPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.mu.Lock()
	dl := c.deadline
	c.mu.Unlock()
	var timeout <-chan time.Time
	if !dl.IsZero() {
		timer := time.NewTimer(time.Until(dl))
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case p := <-c.d.in:
		return copy(b, p), net.UDPAddrFromAddrPort(c.d.remote), nil
	case <-timeout:
		return 0, nil, os.ErrDeadlineExceeded
	case <-c.d.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *chanPacketConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	return c.d.conn.WriteToUDPAddrPort(b, c.d.remote)
}

func (c *chanPacketConn) Close() error                       { return nil }
func (c *chanPacketConn) LocalAddr() net.Addr                { return c.d.conn.LocalAddr() }
func (c *chanPacketConn) SetWriteDeadline(t time.Time) error { return nil }
func (c *chanPacketConn) SetDeadline(t time.Time) error      { return c.SetReadDeadline(t) }
func (c *chanPacketConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	return nil
}

// clientOptions and serverOptions repeat two small adapters of
// webrtc/sip_dtls.go on purpose: the test TAS shares no code with the
// plane it checks, so a mistake there cannot hide itself here.
func clientOptions(opts []dtls.Option) []dtls.ClientOption {
	out := make([]dtls.ClientOption, 0, len(opts))
	for _, o := range opts {
		out = append(out, o)
	}
	return out
}

func serverOptions(opts []dtls.Option) []dtls.ServerOption {
	out := make([]dtls.ServerOption, 0, len(opts)+1)
	for _, o := range opts {
		out = append(out, o)
	}
	return append(out, dtls.WithClientAuth(dtls.RequireAnyClientCert))
}
