package registry_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"callpath/registry"
)

// TAS sources are recognised by the IP literal of their URI, by the
// addresses their name resolves to (Go's resolver: "localhost" from
// /etc/hosts), and by a verified TLS name; a TAS no registration names any
// more is forgotten, one still named by another registration is not.
func TestTASSources(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	r, err := registry.New(ctx, registry.Config{TTL: time.Hour, AllowPlainSIP: true}, openStore(t, filepath.Join(t.TempDir(), "r.db")), c.Now)
	if err != nil {
		t.Fatal(err)
	}
	up := func(number, uri string) {
		t.Helper()
		if _, err := r.Upsert(ctx, tasA, registry.Registration{PhoneNumber: number, RouteType: registry.RouteIngress, SIPURI: uri}); err != nil {
			t.Fatal(err)
		}
	}
	up("+4790000001", "sip:127.0.0.12:5060")
	up("+4790000002", "sip:127.0.0.12:5060")
	up("+4790000003", "sips:localhost:5061")
	up("+4790000004", "sips:tas.invalid")
	if got := r.TASURIs(); !slices.Equal(got, []string{"sip:127.0.0.12:5060", "sips:localhost:5061", "sips:tas.invalid"}) {
		t.Fatalf("TAS URIs %q", got)
	}
	// Go's own resolver reads /etc/hosts; DNS servers it is not allowed
	// to ask (tests stay on loopback), so tas.invalid fails at once.
	hostsOnly := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS in this test")
	}}
	src := &registry.TASSources{Registry: r, Resolver: hostsOnly}
	if err := src.Refresh(ctx); err == nil {
		t.Fatal("tas.invalid resolved")
	}
	for name, tc := range map[string]struct {
		ip    string
		names []string
		want  []string
	}{
		"IP literal":         {"127.0.0.12", nil, []string{"sip:127.0.0.12:5060"}},
		"resolved name":      {"127.0.0.1", nil, []string{"sips:localhost:5061"}},
		"verified TLS name":  {"192.0.2.1", []string{"TAS.invalid."}, []string{"sips:tas.invalid"}},
		"somewhere else":     {"127.0.0.13", nil, nil},
		"other TLS name":     {"192.0.2.1", []string{"evil.example"}, nil},
		"IPv4-mapped source": {"::ffff:127.0.0.12", nil, []string{"sip:127.0.0.12:5060"}},
	} {
		if got := src.Match(netip.MustParseAddr(tc.ip), tc.names); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}

	if err := r.Delete(ctx, tasA, registry.Registration{PhoneNumber: "+4790000001", SIPURI: "sip:127.0.0.12:5060"}); err != nil {
		t.Fatal(err)
	}
	_ = src.Refresh(ctx)
	if got := src.Match(netip.MustParseAddr("127.0.0.12"), nil); len(got) != 1 {
		t.Fatalf("TAS still named by +4790000002 forgotten: %q", got)
	}
	if err := r.Delete(ctx, tasA, registry.Registration{PhoneNumber: "+4790000002", SIPURI: "sip:127.0.0.12:5060"}); err != nil {
		t.Fatal(err)
	}
	_ = src.Refresh(ctx)
	if got := src.Match(netip.MustParseAddr("127.0.0.12"), nil); len(got) != 0 {
		t.Fatalf("TAS no registration names still matches: %q", got)
	}

	// A TAS registered now is recognised by its IP literal on the next
	// call, without a Refresh.
	up("+4790000005", "sip:127.0.0.14:5060")
	if got := src.Match(netip.MustParseAddr("127.0.0.14"), nil); !slices.Equal(got, []string{"sip:127.0.0.14:5060"}) {
		t.Fatalf("TAS registered after the last Refresh: %q", got)
	}
}
