package app

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"callpath/relay"
)

// ownSinks recognises the sinks of the relay embedded in this gateway:
// their events are delivered in-process (delivery.LocalSinks), and a
// subscription may name them although they are plain http on this
// machine's own addresses, which the sink policy refuses for any other
// sink. A sink is ours when its path is the relay's sink path and it
// points at relay.public_url, or, with no public URL (the relay then
// answers with the Host its apps connected to), at this gateway's HTTP
// port on one of this machine's addresses.
type ownSinks struct {
	a *App

	once    sync.Once
	handler http.Handler
	public  *url.URL
	local   map[netip.Addr]bool
}

// Handler implements delivery.LocalSinks.
func (o *ownSinks) Handler(u *url.URL) (http.Handler, bool) {
	if o.a.relay == nil || !strings.HasPrefix(u.Path, relay.PathSinks) || u.User != nil {
		return nil, false
	}
	o.once.Do(o.init)
	if o.public != nil {
		if !strings.EqualFold(u.Scheme, o.public.Scheme) || !strings.EqualFold(u.Host, o.public.Host) {
			return nil, false
		}
		return o.handler, true
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Port() != o.a.httpPort() {
		return nil, false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return o.handler, true
	}
	if ip, err := netip.ParseAddr(host); err == nil && o.local[ip.Unmap()] {
		return o.handler, true
	}
	return nil, false
}

// Is reports whether the sink URL raw is ours.
func (o *ownSinks) Is(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	_, ok := o.Handler(u)
	return ok
}

func (o *ownSinks) init() {
	mux := http.NewServeMux()
	o.a.relay.routes(mux)
	o.handler = mux
	if p := o.a.cfg.Relay.PublicURL; p != "" {
		o.public, _ = url.Parse(p)
	}
	o.local = map[netip.Addr]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
				o.local[ip.Unmap()] = true
			}
		}
	}
}

// httpPort is the HTTP server's bound port ("" before Start).
func (a *App) httpPort() string {
	if a.httpLn == nil {
		return ""
	}
	return strconv.Itoa(a.httpLn.Addr().(*net.TCPAddr).Port)
}
