package b2bua

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"callpath/sipstack"
)

// listenerSet holds the sockets callpath serves SIP on. They are opened here,
// not by sipgo, so that port 0 works (tests) and the UDP socket gets a large
// receive buffer.
type listenerSet struct {
	udp      *net.UDPConn
	streams  map[string]net.Listener // tcp, tls, ws, wss
	addrs    map[string]string
	host     string // host for Via and Contact
	ports    map[string]int
	udpLocal string
	contacts sync.Map // transport -> *sip.ContactHeader, see Server.contact
}

func openListeners(cfg Config) (*listenerSet, error) {
	ls := &listenerSet{streams: map[string]net.Listener{}, addrs: map[string]string{}, ports: map[string]int{}}
	fail := func(err error) (*listenerSet, error) {
		ls.close()
		return nil, err
	}
	var firstHost string
	if cfg.Listen.UDP != "" {
		pc, err := listenUDP(cfg.Listen.UDP, cfg.UDPReceiveBuffer)
		if err != nil {
			return fail(fmt.Errorf("listen udp %s: %w", cfg.Listen.UDP, err))
		}
		ls.udp = pc
		ls.udpLocal = pc.LocalAddr().String()
		ls.record("udp", pc.LocalAddr())
		firstHost = hostOf(pc.LocalAddr())
	}
	streams := []struct{ name, addr string }{
		{"tcp", cfg.Listen.TCP}, {"tls", cfg.Listen.TLS}, {"ws", cfg.Listen.WS}, {"wss", cfg.Listen.WSS},
	}
	for _, st := range streams {
		if st.addr == "" {
			continue
		}
		var l net.Listener
		var err error
		if st.name == "tls" || st.name == "wss" {
			if cfg.TLS == nil {
				return fail(fmt.Errorf("listen %s: no TLS certificate configured", st.name))
			}
			l, err = tls.Listen(tcpNetwork(st.addr), st.addr, cfg.TLS)
		} else {
			l, err = net.Listen(tcpNetwork(st.addr), st.addr)
		}
		if err != nil {
			return fail(fmt.Errorf("listen %s %s: %w", st.name, st.addr, err))
		}
		ls.streams[st.name] = l
		ls.record(st.name, l.Addr())
		if firstHost == "" {
			firstHost = hostOf(l.Addr())
		}
	}
	ls.host = advertisedHost(cfg.AdvertisedHost, firstHost)
	return ls, nil
}

// tcpNetwork pins IPv4 listen addresses to tcp4 so that the bound address
// reads back as written (0.0.0.0, not [::]).
func tcpNetwork(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
		return "tcp4"
	}
	return "tcp"
}

func (ls *listenerSet) record(name string, a net.Addr) {
	ls.addrs[name] = a.String()
	_, port, _ := net.SplitHostPort(a.String())
	ls.ports[name], _ = strconv.Atoi(port)
}

func hostOf(a net.Addr) string {
	host, _, _ := net.SplitHostPort(a.String())
	return host
}

// advertisedHost picks the host written into Via and Contact: the configured
// one, else the listen IP, else (unspecified listen IP) the first
// non-loopback address of the machine.
func advertisedHost(configured, listenHost string) string {
	if configured != "" {
		return configured
	}
	ip := net.ParseIP(listenHost)
	if ip != nil && !ip.IsUnspecified() {
		return listenHost
	}
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

func (ls *listenerSet) addr(transport string) string {
	return ls.addrs[strings.ToLower(transport)]
}

// port returns our listen port for a transport, falling back to any listener
// (a request may leave on a transport we do not listen on, such as TCP to a
// trunk while we only listen on UDP; responses then come back on the
// connection anyway).
func (ls *listenerSet) port(transport string) int {
	if p, ok := ls.ports[strings.ToLower(transport)]; ok {
		return p
	}
	for _, name := range []string{"udp", "tcp", "tls", "ws", "wss"} {
		if p, ok := ls.ports[name]; ok {
			return p
		}
	}
	return 0
}

func (ls *listenerSet) serve(srv *sipstack.Stack, wg *sync.WaitGroup, log *logrus.Entry) {
	run := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && !errors.Is(err, net.ErrClosed) {
				log.WithError(err).WithField("transport", name).Error("sip listener stopped")
			}
		}()
	}
	if ls.udp != nil {
		run("udp", func() error { return srv.ServeUDP(ls.udp) })
	}
	for name, l := range ls.streams {
		l := l
		switch name {
		case "tcp":
			run(name, func() error { return srv.ServeTCP(l) })
		case "tls":
			run(name, func() error { return srv.ServeTLS(l) })
		case "ws":
			run(name, func() error { return srv.ServeWS(l) })
		case "wss":
			run(name, func() error { return srv.ServeWSS(l) })
		}
	}
}

func (ls *listenerSet) close() {
	if ls.udp != nil {
		_ = ls.udp.Close()
	}
	for _, l := range ls.streams {
		_ = l.Close()
	}
}
