package conf

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// validateMedia checks the media section when WebRTC calls are on.
func (c *Config) validateMedia() error {
	m := c.Media
	if !m.Enabled {
		return nil
	}
	if c.SIP.Listen.UDP == "" {
		return keyError("media.enabled", "the WebRTC gateway reaches the B2BUA over UDP: sip.listen.udp must be set")
	}
	if _, err := netip.ParseAddrPort(m.ICEListen); err != nil {
		return keyError("media.ice_listen", "want ip:port, got %q", m.ICEListen)
	}
	for i, a := range m.ICEAdvertise {
		if _, err := netip.ParseAddr(a); err != nil {
			return keyError("media.ice_advertise["+strconv.Itoa(i)+"]", "want an IP address, got %q", a)
		}
	}
	if _, err := netip.ParseAddr(m.RTPListenIP); err != nil {
		return keyError("media.rtp_listen_ip", "want an IP address, got %q", m.RTPListenIP)
	}
	if m.RTPAdvertise != "" {
		if _, err := netip.ParseAddr(m.RTPAdvertise); err != nil {
			return keyError("media.rtp_advertise", "want an IP address, got %q", m.RTPAdvertise)
		}
	}
	if m.RTPPorts.Min < 1024 || m.RTPPorts.Max > 65535 || m.RTPPorts.Max <= m.RTPPorts.Min {
		return keyError("media.rtp_ports", "want 1024 <= min < max <= 65535, got %d-%d", m.RTPPorts.Min, m.RTPPorts.Max)
	}
	if len(m.Codecs) == 0 {
		return keyError("media.codecs", "name at least one of PCMU, PCMA")
	}
	for i, name := range m.Codecs {
		if n := strings.ToUpper(name); n != "PCMU" && n != "PCMA" {
			return keyError("media.codecs["+strconv.Itoa(i)+"]", "the SIP side carries PCMU and PCMA, got %q", name)
		}
	}
	for key, d := range map[string]time.Duration{"media.media_timeout": m.MediaTimeout,
		"media.connect_timeout": m.ConnectTimeout, "media.ring_timeout": m.RingTimeout, "media.retention": m.Retention} {
		if err := positive(key, d); err != nil {
			return err
		}
	}
	switch m.SIPDTLSSRTP {
	case SIPDTLSOn488, SIPDTLSAlways, SIPDTLSNever:
	default:
		return keyError("media.sip_dtls_srtp", "want %s, %s or %s, got %q", SIPDTLSOn488, SIPDTLSAlways, SIPDTLSNever, m.SIPDTLSSRTP)
	}
	for i, peer := range m.DTLSSRTPPeers {
		if err := validPeer(peer); err != nil {
			return keyError("media.dtls_srtp_peers["+strconv.Itoa(i)+"]", "%v", err)
		}
	}
	ap, err := netip.ParseAddrPort(m.GatewayListen)
	if err != nil || !ap.Addr().IsLoopback() {
		return keyError("media.gateway_listen", "want a loopback ip:port such as 127.0.0.1:0, got %q", m.GatewayListen)
	}
	return nil
}

// validPeer checks a host or host:port naming a SIP peer.
func validPeer(peer string) error {
	host, port := peer, ""
	if h, p, err := net.SplitHostPort(peer); err == nil {
		host, port = h, p
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("want host or host:port, got %q (port)", peer)
		}
	}
	if host == "" || strings.ContainsAny(host, " /:;@?") && net.ParseIP(strings.Trim(host, "[]")) == nil {
		return fmt.Errorf("want host or host:port, got %q", peer)
	}
	return nil
}
