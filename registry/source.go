package registry

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Resolver looks up a host name's addresses (net.DefaultResolver does).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// TASSources tells whether a call comes from a registered TAS, and which:
// a TAS is recognised by its address (the IP literal of its sip_uri, or the
// addresses its host name resolves to) or by the names in the TLS
// certificate it presented. The call path needs this for INGRESS (a TAS may
// call the numbers registered to it) and to recognise a looped call coming
// back (leg 3).
type TASSources struct {
	Registry interface{ TASURIs() []string }
	Resolver Resolver

	mu    sync.RWMutex
	byIP  map[netip.Addr][]string // address -> TAS URIs at it
	names map[string][]string     // lower-case host name -> TAS URIs
}

// Refresh rebuilds the address map from the registered TAS URIs, resolving
// host names. A name that does not resolve keeps no address (TLS names can
// still match it); the first lookup error is returned after the rebuild.
func (t *TASSources) Refresh(ctx context.Context) error {
	byIP := map[netip.Addr][]string{}
	names := map[string][]string{}
	var firstErr error
	for _, uri := range t.Registry.TASURIs() {
		u, err := ParseTASURI(uri, true)
		if err != nil {
			continue // stored URIs are normalised; nothing else can be here
		}
		if ip, err := netip.ParseAddr(u.Host); err == nil {
			byIP[ip.Unmap()] = append(byIP[ip.Unmap()], uri)
			continue
		}
		names[u.Host] = append(names[u.Host], uri)
		if t.Resolver == nil {
			continue
		}
		addrs, err := t.Resolver.LookupNetIP(ctx, "ip", u.Host)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		for _, a := range addrs {
			byIP[a.Unmap()] = append(byIP[a.Unmap()], uri)
		}
	}
	t.mu.Lock()
	t.byIP, t.names = byIP, names
	t.mu.Unlock()
	return firstErr
}

// Match returns the TAS URIs a call from ip comes from; none for a call from
// anywhere else. tlsNames are the DNS names of the peer's certificate, which
// the caller must have verified (on a plain connection: none).
func (t *TASSources) Match(ip netip.Addr, tlsNames []string) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []string
	add := func(uris []string) {
		for _, u := range uris {
			if !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	add(t.byIP[ip.Unmap()])
	for _, n := range tlsNames {
		add(t.names[strings.ToLower(strings.TrimSuffix(n, "."))])
	}
	return out
}
