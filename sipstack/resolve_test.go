package sipstack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"callpath/internal/dnstest"
)

// dnsmasqZone is what the test DNS server answers for (and nothing else:
// --local=/test/ makes every other name under test. NXDOMAIN).
var dnsmasqZone = []string{
	// Two priorities; the first target has an A and an AAAA record.
	"--srv-host=_sips._tcp.tas.test,tas-b.test,5072,20,10",
	"--srv-host=_sips._tcp.tas.test,tas-a.test,5071,10,50",
	"--host-record=tas.test,127.0.0.9",
	"--host-record=tas-a.test,::2,127.0.0.2",
	"--host-record=tas-b.test,127.0.0.3",
	// No SRV at all, A and AAAA.
	"--host-record=plain.test,::4,127.0.0.4",
	// SRV under _tls (sipgo's guess), not _tcp: not ours (RFC 3263 §4.1).
	"--srv-host=_sips._tls.tlsonly.test,tas-b.test,5099,10,10",
	"--host-record=tlsonly.test,127.0.0.5",
	// An SRV target without address records is skipped.
	"--srv-host=_sips._tcp.half.test,gone.test,5070,10,10",
	"--srv-host=_sips._tcp.half.test,tas-b.test,5072,20,10",
}

// startDNSMasq runs dnsmasq with dnsmasqZone and returns a resolver that
// asks only it.
func startDNSMasq(t *testing.T) *net.Resolver {
	t.Helper()
	r, _ := dnstest.Start(t, dnsmasqZone...)
	return r
}

func addrPorts(ss ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddrPort(s)
	}
	return out
}

// ResolveSIPS against a real DNS server: SRV _sips._tcp by priority with
// each target's addresses IPv4 first; a port in the URI means A/AAAA and no
// SRV; no SRV means the host on 5061 (and _sips._tls is not looked at); an
// SRV target without addresses is skipped; an unknown host is an error that
// names it.
func TestResolveSIPS(t *testing.T) {
	r := startDNSMasq(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		host string
		port int
		want []netip.AddrPort
	}{
		{"srv priorities", "tas.test", 0, addrPorts("127.0.0.2:5071", "[::2]:5071", "127.0.0.3:5072")},
		{"port given: no SRV", "tas.test", 5071, addrPorts("127.0.0.9:5071")},
		{"no SRV: host on 5061", "plain.test", 0, addrPorts("127.0.0.4:5061", "[::4]:5061")},
		{"_tls SRV is not used", "tlsonly.test", 0, addrPorts("127.0.0.5:5061")},
		{"SRV target without address skipped", "half.test", 0, addrPorts("127.0.0.3:5072")},
		{"IP literal", "192.0.2.1", 0, addrPorts("192.0.2.1:5061")},
		{"IPv6 literal with port", "[2001:db8::1]", 5080, addrPorts("[2001:db8::1]:5080")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveSIPS(ctx, r, tc.host, tc.port)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("ResolveSIPS(%s, %d) = %v, want %v", tc.host, tc.port, got, tc.want)
			}
		})
	}
	for _, port := range []int{0, 5061} {
		_, err := ResolveSIPS(ctx, r, "unknown.test", port)
		var dnsErr *net.DNSError
		if err == nil || !strings.Contains(err.Error(), "unknown.test") || !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Fatalf("unknown host, port %d: %v, want a not-found DNS error naming the host", port, err)
		}
	}
}

// fakeResolver answers from maps, for what a real server will not readily
// do: fail.
type fakeResolver struct {
	srvErr error
	ips    map[string][]netip.Addr
}

func (f *fakeResolver) LookupSRV(context.Context, string, string, string) (string, []*net.SRV, error) {
	return "", nil, f.srvErr
}

func (f *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if ips, ok := f.ips[host]; ok {
		return ips, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// An SRV lookup that fails (not "no records") is an error, not a fallback
// to the host's address and port 5061, which could be another server.
func TestResolveSIPSFailedSRVIsNoFallback(t *testing.T) {
	f := &fakeResolver{
		srvErr: &net.DNSError{Err: "server misbehaving", Name: "_sips._tcp.tas.test", IsTemporary: true},
		ips:    map[string][]netip.Addr{"tas.test": {netip.MustParseAddr("127.0.0.9")}},
	}
	if got, err := ResolveSIPS(context.Background(), f, "tas.test", 0); err == nil || !strings.Contains(err.Error(), "tas.test") {
		t.Fatalf("got %v, %v; want an error naming tas.test", got, err)
	}
	f.srvErr = &net.DNSError{Err: "no such host", Name: "_sips._tcp.tas.test", IsNotFound: true}
	got, err := ResolveSIPS(context.Background(), f, "tas.test", 0)
	if err != nil || !slices.Equal(got, addrPorts("127.0.0.9:5061")) {
		t.Fatalf("not found SRV: got %v, %v; want 127.0.0.9:5061", got, err)
	}
}
