package sipstack

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
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

// startDNSMasq runs dnsmasq on a free port of 127.0.0.1 with
// dnsmasqZone and returns a resolver that asks only it.
func startDNSMasq(t *testing.T) *net.Resolver {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/dnsmasq"); err != nil {
			t.Fatal("dnsmasq is not installed: run scripts/deps.sh (it installs dnsmasq-base)")
		}
	}
	// The port is free when we look; dnsmasq may still lose it to someone
	// else before it binds, then it exits and we try another.
	var lastErr error
	for range 5 {
		r, err := tryDNSMasq(t, bin)
		if err == nil {
			return r
		}
		lastErr = err
	}
	t.Fatalf("dnsmasq did not start: %v", lastErr)
	return nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func tryDNSMasq(t *testing.T, bin string) (*net.Resolver, error) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	_ = pc.Close()
	args := append([]string{
		"--keep-in-foreground", "--port=" + strconv.Itoa(port),
		"--listen-address=127.0.0.1", "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
		"--log-facility=-", "--local=/test/", "--cache-size=0",
	}, dnsmasqZone...)
	cmd := exec.Command(bin, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dnsmasq: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	server := "127.0.0.1:" + strconv.Itoa(port)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, server)
	}}
	deadline := time.After(5 * time.Second)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := r.LookupNetIP(ctx, "ip4", "tas-b.test")
		cancel()
		if err == nil {
			t.Cleanup(stop)
			return r, nil
		}
		select {
		case <-exited:
			return nil, errors.New("dnsmasq exited: " + out.String())
		case <-deadline:
			stop()
			return nil, errors.New("dnsmasq not answering after 5 s: " + err.Error() + "\n" + out.String())
		case <-poll.C:
		}
	}
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
