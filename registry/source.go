package registry

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Resolver looks up a host name's addresses (net.DefaultResolver does).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// TASSet is the registry as TASSources reads it.
type TASSet interface {
	TASURIs() []string
	// TASVersion changes whenever TASURIs would return another set.
	TASVersion() uint64
}

// TASSources tells whether a call comes from a registered TAS, and which:
// a TAS is recognised by its address (the IP literal of its sip_uri, or the
// addresses its host name resolves to) or by the names in the TLS
// certificate it presented. The call path needs this for INGRESS (a TAS may
// call the numbers registered to it) and to recognise a looped call coming
// back (leg 3).
//
// Match follows the registry by itself: a TAS registered a moment ago is
// recognised by its IP literal or TLS name on the next call. Host names are
// resolved only by Refresh (Run calls it when new names appear and every
// interval), never on the call path.
type TASSources struct {
	Registry TASSet
	Resolver Resolver

	mu       sync.RWMutex
	built    bool
	version  uint64                  // registry TAS version the maps below reflect
	byIP     map[netip.Addr][]string // address -> TAS URIs at it
	names    map[string][]string     // lower-case host name -> TAS URIs
	resolved map[string][]netip.Addr // host name -> addresses, from the last Refresh

	kickOnce sync.Once
	kick     chan struct{} // a name without addresses appeared: Run resolves it
}

// Refresh resolves the registered TAS host names and rebuilds the maps. A
// name that does not resolve keeps no address (TLS names can still match
// it); the first lookup error is returned after the rebuild.
func (t *TASSources) Refresh(ctx context.Context) error {
	version := t.Registry.TASVersion()
	uris := t.Registry.TASURIs()
	resolved := map[string][]netip.Addr{}
	var firstErr error
	for _, uri := range uris {
		host, isIP := tasHost(uri)
		if host == "" || isIP || t.Resolver == nil {
			continue
		}
		if _, done := resolved[host]; done {
			continue
		}
		addrs, err := t.Resolver.LookupNetIP(ctx, "ip", host)
		// A sips: URI without port is reached through its SRV targets
		// (RFC 3263), and its calls come from them too.
		if u, perr := ParseTASURI(uri, true); perr == nil && u.Secure && u.Port == 0 {
			srvAddrs, srvErr := t.srvAddresses(ctx, host)
			addrs = append(addrs, srvAddrs...)
			if err != nil && srvErr == nil && len(srvAddrs) > 0 {
				err = nil
			}
		}
		if err != nil && len(addrs) == 0 {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		resolved[host] = addrs
	}
	t.mu.Lock()
	t.resolved = resolved
	t.rebuildLocked(version, uris)
	t.mu.Unlock()
	return firstErr
}

// srvAddresses returns the addresses of the _sips._tcp SRV targets of host,
// when the resolver can look SRV records up.
func (t *TASSources) srvAddresses(ctx context.Context, host string) ([]netip.Addr, error) {
	r, ok := t.Resolver.(interface {
		LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	})
	if !ok {
		return nil, nil
	}
	_, srvs, err := r.LookupSRV(ctx, "sips", "tcp", host)
	var out []netip.Addr
	for _, srv := range srvs {
		addrs, lerr := t.Resolver.LookupNetIP(ctx, "ip", strings.TrimSuffix(srv.Target, "."))
		if lerr == nil {
			out = append(out, addrs...)
		}
	}
	return out, err
}

// Run keeps the host names resolved: at once when a new name is
// registered, and every interval for DNS changes. It returns when ctx ends.
func (t *TASSources) Run(ctx context.Context, every time.Duration, onError func(error)) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	kick := t.kicks()
	for {
		if err := t.Refresh(ctx); err != nil && onError != nil && ctx.Err() == nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-kick:
		}
	}
}

func (t *TASSources) kicks() chan struct{} {
	t.kickOnce.Do(func() { t.kick = make(chan struct{}, 1) })
	return t.kick
}

// sync rebuilds the maps when the registry's TAS set changed since.
func (t *TASSources) sync() {
	version := t.Registry.TASVersion()
	t.mu.RLock()
	current := t.built && t.version == version
	t.mu.RUnlock()
	if current {
		return
	}
	uris := t.Registry.TASURIs()
	t.mu.Lock()
	unresolved := t.rebuildLocked(version, uris)
	t.mu.Unlock()
	if unresolved && t.Resolver != nil {
		select {
		case t.kicks() <- struct{}{}:
		default:
		}
	}
}

// rebuildLocked fills byIP and names from uris and the last resolution; it
// reports whether some host name has never been resolved. Called with t.mu
// held for writing.
func (t *TASSources) rebuildLocked(version uint64, uris []string) (unresolved bool) {
	byIP := map[netip.Addr][]string{}
	names := map[string][]string{}
	for _, uri := range uris {
		host, isIP := tasHost(uri)
		switch {
		case host == "":
		case isIP:
			ip := netip.MustParseAddr(host).Unmap()
			byIP[ip] = append(byIP[ip], uri)
		default:
			names[host] = append(names[host], uri)
			addrs, ok := t.resolved[host]
			if !ok {
				unresolved = true
			}
			for _, a := range addrs {
				byIP[a.Unmap()] = append(byIP[a.Unmap()], uri)
			}
		}
	}
	t.byIP, t.names, t.version, t.built = byIP, names, version, true
	return unresolved
}

// tasHost returns the host of a stored TAS URI and whether it is an IP
// literal; "" for what cannot be parsed (stored URIs are normalised, so
// nothing).
func tasHost(uri string) (host string, isIP bool) {
	u, err := ParseTASURI(uri, true)
	if err != nil {
		return "", false
	}
	_, err = netip.ParseAddr(u.Host)
	return u.Host, err == nil
}

// Match returns the TAS URIs a call from ip comes from; none for a call from
// anywhere else. tlsNames are the DNS names of the peer's certificate, which
// the caller must have verified (on a plain connection: none).
func (t *TASSources) Match(ip netip.Addr, tlsNames []string) []string {
	t.sync()
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
