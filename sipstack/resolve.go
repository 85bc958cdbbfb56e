package sipstack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// DefaultSIPSPort and DefaultSIPPort are the ports of a sips: and a sip: URI
// that name none (RFC 3261 §19.1.2).
const (
	DefaultSIPSPort = 5061
	DefaultSIPPort  = 5060
)

// DNSResolver is what ResolveSIPS asks; net.DefaultResolver and any
// *net.Resolver satisfy it.
type DNSResolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ DNSResolver = net.DefaultResolver

// ResolveSIPS finds the addresses to try, in order, for a sips: URI with
// host and port (0: the URI names no port): ResolveSIP for TLS over TCP.
// Whatever the addresses, the TLS peer must be verified against host (RFC
// 5922 §4), not against an SRV target: see Stack.DialTLS.
func ResolveSIPS(ctx context.Context, r DNSResolver, host string, port int) ([]netip.AddrPort, error) {
	return ResolveSIP(ctx, r, "sips", "tcp", host, port)
}

// ResolveSIP finds the addresses to try, in order, for a SIP URI of scheme
// ("sip" or "sips") reached over proto ("udp" or "tcp"; TLS is "tcp" with
// "sips"), with host and port (0: the URI names no port), following RFC 3263
// §4.2:
//
//   - an IP literal is the address itself (port 5060, or 5061 for sips);
//   - with a port, the host's A and AAAA records (IPv4 first), no SRV;
//   - without one, the SRV records of _<scheme>._<proto>.<host> in the order
//     Go gives them (by priority, randomised by weight within one), each
//     target resolved to its addresses (IPv4 first); targets that do not
//     resolve are skipped. When the host has no SRV records (NXDOMAIN or no
//     answer), its A and AAAA records with the default port.
//
// r nil means net.DefaultResolver. Errors name the host and wrap the
// resolver's.
func ResolveSIP(ctx context.Context, r DNSResolver, scheme, proto, host string, port int) ([]netip.AddrPort, error) {
	defaultPort := uint16(DefaultSIPPort)
	if scheme == "sips" {
		defaultPort = DefaultSIPSPort
	}
	if r == nil {
		r = net.DefaultResolver
	}
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("sipstack: resolve %s:%s: bad port %d", scheme, host, port)
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return nil, fmt.Errorf("sipstack: resolve %s: empty host", scheme)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(ip.Unmap(), cmp.Or(uint16(port), defaultPort))}, nil
	}
	if port != 0 {
		return lookupHost(ctx, r, scheme, host, uint16(port))
	}
	_, srvs, err := r.LookupSRV(ctx, scheme, proto, host)
	var dnsErr *net.DNSError
	if err != nil && len(srvs) == 0 && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
		// A failed lookup is not an absent record: falling back to the
		// host's address could pick another server, or port, than the
		// domain publishes. (Go returns the valid records along with an
		// error when some were malformed; those are used.)
		return nil, fmt.Errorf("sipstack: resolve %s:%s: SRV _%s._%s.%s: %w", scheme, host, scheme, proto, host, err)
	}
	if len(srvs) == 0 {
		// No SRV records: the host itself, on the default port (§4.2).
		return lookupHost(ctx, r, scheme, host, defaultPort)
	}
	var out []netip.AddrPort
	var lastErr error
	for _, srv := range srvs {
		if srv.Target == "." || srv.Target == "" {
			continue // "service decidedly not available" (RFC 2782)
		}
		ips, err := lookupIPs(ctx, r, srv.Target)
		if err != nil {
			lastErr = err
			continue
		}
		for _, ip := range ips {
			out = append(out, netip.AddrPortFrom(ip, srv.Port))
		}
	}
	if len(out) == 0 {
		if lastErr == nil {
			lastErr = errors.New("no usable SRV target")
		}
		return nil, fmt.Errorf("sipstack: resolve %s:%s: SRV _%s._%s.%s: %w", scheme, host, scheme, proto, host, lastErr)
	}
	return out, nil
}

// lookupHost is host's addresses with port.
func lookupHost(ctx context.Context, r DNSResolver, scheme, host string, port uint16) ([]netip.AddrPort, error) {
	ips, err := lookupIPs(ctx, r, host)
	if err != nil {
		return nil, fmt.Errorf("sipstack: resolve %s:%s: %w", scheme, host, err)
	}
	out := make([]netip.AddrPort, len(ips))
	for i, ip := range ips {
		out[i] = netip.AddrPortFrom(ip, port)
	}
	return out, nil
}

// lookupIPs is name's A and AAAA records, IPv4 first, otherwise in the
// resolver's order.
func lookupIPs(ctx context.Context, r DNSResolver, name string) ([]netip.Addr, error) {
	ips, err := r.LookupNetIP(ctx, "ip", name)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("no address for %s", name)
	}
	for i, ip := range ips {
		ips[i] = ip.Unmap()
	}
	slices.SortStableFunc(ips, func(a, b netip.Addr) int {
		switch {
		case a.Is4() == b.Is4():
			return 0
		case a.Is4():
			return -1
		default:
			return 1
		}
	})
	return ips, nil
}
