package delivery

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// maxSinkLen bounds a sink URL; longer ones are refused by ValidateSink.
const maxSinkLen = 2048

// SinkPolicy says which sinks events may be POSTed to (DESIGN §5): https
// only, unless the host is listed in AllowHTTPHosts, and never to a
// loopback, private, link-local, unspecified, multicast, CGNAT, 0.0.0.0/8
// or reserved address unless that address is inside one of AllowCIDRs.
//
// The URL is checked by ValidateSink (when a subscription is created, and
// again before every POST); the address is checked on the address actually
// dialled, after DNS resolution (see Control), so a public-looking name that
// resolves to 127.0.0.1 is refused all the same.
//
// The zero value is the strict production policy.
type SinkPolicy struct {
	// AllowHTTPHosts are host names or IP literals (no port, compared
	// case-insensitively) whose sinks may use plain http.
	AllowHTTPHosts []string
	// AllowCIDRs are address ranges a sink may connect to even though they
	// are otherwise refused (a lab's 10.0.0.0/8, 127.0.0.0/8 in tests).
	AllowCIDRs []netip.Prefix
}

// AddressError is the error for a sink address the policy refuses.
type AddressError struct {
	Addr netip.Addr
	Kind string // "loopback", "private", …
}

func (e *AddressError) Error() string {
	return fmt.Sprintf("sink address %s is %s: refused by the sink policy (not in the allowed CIDRs)", e.Addr, e.Kind)
}

// SinkError is the error for a sink URL the policy refuses.
type SinkError struct {
	Reason string
}

func (e *SinkError) Error() string { return "invalid sink: " + e.Reason }

func sinkErr(format string, args ...any) error {
	return &SinkError{Reason: fmt.Sprintf(format, args...)}
}

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	cgnat       = netip.MustParsePrefix("100.64.0.0/10")
	reserved4   = netip.MustParsePrefix("240.0.0.0/4") // includes 255.255.255.255
	siteLocal6  = netip.MustParsePrefix("fec0::/10")   // deprecated, still never public
	nat64       = netip.MustParsePrefix("64:ff9b::/96")
)

// classify names the refused range addr is in, or "" for a public address.
func classify(addr netip.Addr) string {
	addr = addr.Unmap()
	if nat64.Contains(addr) {
		// The well-known NAT64 prefix embeds an IPv4 address: judge that one.
		b := addr.As16()
		if k := classify(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})); k != "" {
			return k + " (via NAT64)"
		}
		return ""
	}
	switch {
	case !addr.IsValid():
		return "invalid"
	case addr.IsUnspecified():
		return "unspecified"
	case addr.IsLoopback():
		return "loopback"
	case addr.IsPrivate():
		return "private"
	case addr.IsMulticast():
		return "multicast"
	case addr.IsLinkLocalUnicast():
		return "link-local"
	case thisNetwork.Contains(addr):
		return "in 0.0.0.0/8"
	case cgnat.Contains(addr):
		return "CGNAT (100.64.0.0/10)"
	case reserved4.Contains(addr):
		return "reserved (240.0.0.0/4)"
	case siteLocal6.Contains(addr):
		return "site-local"
	}
	return ""
}

// CheckAddr refuses an address in a refused range that no AllowCIDRs entry
// covers.
func (p SinkPolicy) CheckAddr(addr netip.Addr) error {
	addr = addr.WithZone("")
	kind := classify(addr)
	if kind == "" {
		return nil
	}
	for _, pfx := range p.AllowCIDRs {
		if pfx.Contains(addr) || pfx.Contains(addr.Unmap()) {
			return nil
		}
	}
	return &AddressError{Addr: addr, Kind: kind}
}

// Control is a net.Dialer Control function: it runs after DNS resolution,
// just before connect, with the address actually dialled.
func (p SinkPolicy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("sink policy: cannot check dialled address %q: %w", address, err)
	}
	return p.CheckAddr(ap.Addr())
}

func (p SinkPolicy) httpAllowed(host string) bool {
	host = strings.TrimSuffix(host, ".")
	for _, h := range p.AllowHTTPHosts {
		if strings.EqualFold(strings.TrimSuffix(h, "."), host) {
			return true
		}
	}
	return false
}

// ValidateSink checks a sink URL: absolute, https (or http for a listed
// host), a host, no user info, and, when the host is an IP literal, an
// address the policy allows. A host name is not resolved here: its
// addresses are checked when the deliverer connects. The errors are
// *SinkError or *AddressError, with messages fit for an API client.
func (p SinkPolicy) ValidateSink(raw string) error {
	if raw == "" {
		return sinkErr("the sink URL is empty")
	}
	if len(raw) > maxSinkLen {
		return sinkErr("the sink URL is longer than %d characters", maxSinkLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return sinkErr("the sink is not a valid URL: %v", err)
	}
	if !u.IsAbs() || u.Opaque != "" {
		return sinkErr("the sink must be an absolute https URL")
	}
	if u.User != nil {
		return sinkErr("the sink URL must not carry user info (user:password@); use sinkCredential")
	}
	host := u.Hostname()
	if host == "" {
		return sinkErr("the sink URL has no host")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !p.httpAllowed(host) {
			return sinkErr("the sink must use https (plain http is allowed only for hosts the operator lists)")
		}
	default:
		return sinkErr("the sink scheme %q is not supported: use https", u.Scheme)
	}
	if u.Fragment != "" {
		return sinkErr("the sink URL must not have a fragment")
	}
	if port := u.Port(); port != "" {
		if n, ok := parsePort(port); !ok || n == 0 {
			return sinkErr("the sink URL has an invalid port %q", port)
		}
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if err := p.CheckAddr(addr); err != nil {
			return err
		}
	}
	return nil
}

func parsePort(s string) (int, bool) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
		if n > 65535 {
			return 0, false
		}
	}
	return n, s != ""
}
