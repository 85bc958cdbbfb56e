package sipstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// route is where a transaction's messages go: a UDP address (sent from our
// socket) or a stream connection of sipgo's, which is reference counted.
type route struct {
	udp    *net.UDPConn
	addr   netip.AddrPort
	stream sip.Connection
}

func (r *route) reliable() bool { return r.stream != nil }

// release gives back the reference held on a stream connection.
func (r *route) release() {
	if r.stream != nil {
		_, _ = r.stream.TryClose()
		r.stream = nil
	}
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// write serialises msg and sends it.
func (s *Stack) write(r *route, msg sip.Message) error {
	if r.stream != nil {
		return r.stream.WriteMsg(msg)
	}
	if r.udp == nil {
		return errors.New("sipstack: no route")
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	msg.StringWrite(buf)
	_, err := r.udp.WriteToUDPAddrPort(buf.Bytes(), r.addr)
	if buf.Cap() <= 64<<10 {
		bufPool.Put(buf)
	}
	return err
}

// routeRequest finds where a request goes (RFC 3263 without SRV/NAPTR):
// its destination if set (a flow), else the first Route or the
// Request-URI, resolved to an address.
func (s *Stack) routeRequest(ctx context.Context, req *sip.Request) (route, error) {
	if !strings.EqualFold(req.Transport(), "UDP") {
		conn, err := s.tpl.ClientRequestConnection(ctx, req)
		if flow := req.MessageData.Destination(); err != nil && flow != "" && strings.EqualFold(req.Transport(), "TCP") {
			// The flow the destination names is gone (the peer, or a
			// proxy's idle timer, closed it): a new connection to the
			// request's own next hop, the route set's first entry or
			// the remote target (RFC 3261 §12.2.1.1, §18.1.1). Plain TCP
			// only: a TLS flow was dialled and verified for its host
			// (b2bua's DialTLS), which a fresh dial here would not be.
			req.SetDestination("")
			if conn, err = s.tpl.ClientRequestConnection(ctx, req); err != nil {
				req.SetDestination(flow)
			}
		}
		if err != nil {
			return route{}, err
		}
		return route{stream: conn}, nil
	}
	conn, err := s.udpSocket()
	if err != nil {
		return route{}, err
	}
	addr, err := resolveUDP(ctx, req.Destination())
	if err != nil {
		return route{}, err
	}
	return route{udp: conn, addr: addr}, nil
}

// resolveUDP turns host:port into an address; IP literals need no lookup.
func resolveUDP(ctx context.Context, hostport string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return ap, nil
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("sipstack: destination %q: %w", hostport, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("sipstack: destination %q: bad port", hostport)
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return netip.AddrPortFrom(ip, uint16(p)), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil || len(ips) == 0 {
		ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("sipstack: resolve %s: %w", host, err)
	}
	if len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("sipstack: resolve %s: no address", host)
	}
	return netip.AddrPortFrom(ips[0].Unmap(), uint16(p)), nil
}

// udpSocket returns the socket UDP requests leave from: the first one served,
// or, when callpath listens on no UDP at all, one opened on demand.
func (s *Stack) udpSocket() (*net.UDPConn, error) {
	s.udpMu.Lock()
	defer s.udpMu.Unlock()
	if s.udp != nil {
		return s.udp, nil
	}
	if s.closed.Load() {
		return nil, sip.ErrTransactionTerminated
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return nil, fmt.Errorf("sipstack: open udp socket: %w", err)
	}
	s.udp = conn
	s.ownUDP = conn
	for range s.cfg.UDPReaders {
		s.udpWG.Add(1)
		go func() {
			defer s.udpWG.Done()
			_ = s.readUDP(conn)
		}()
	}
	return conn, nil
}

// readUDP is one read loop of a UDP socket: read, parse, match, handle.
func (s *Stack) readUDP(conn *net.UDPConn) error {
	buf := make([]byte, 65535)
	parser := sip.NewParser()
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.receiveDatagram(parser, conn, buf[:n], from)
	}
}

// receiveDatagram handles one UDP datagram. Keepalives (CRLF, RFC 5626) and
// anything unparseable are dropped: there is nothing to answer them with.
func (s *Stack) receiveDatagram(parser *sip.Parser, conn *net.UDPConn, data []byte, from netip.AddrPort) {
	if len(bytes.TrimSpace(data)) == 0 || data[0] < 'A' || data[0] > 'Z' {
		return
	}
	msg, err := parser.ParseSIP(data)
	if err != nil {
		s.stats.Unparseable.Add(1)
		return
	}
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	msg.SetTransport("UDP")
	msg.SetSource(from.String())
	r := route{udp: conn, addr: from}
	if req, ok := msg.(*sip.Request); ok {
		r.addr = responseAddr(req, from)
	}
	s.receive(msg, r)
}

// responseAddr is where responses to a UDP request go (RFC 3261 §18.2.2,
// RFC 3581): the source address, and the source port when the request asked
// for rport, else the port in its Via. The Via is marked with received and
// rport so that the responses say what we saw.
func responseAddr(req *sip.Request, from netip.AddrPort) netip.AddrPort {
	via := req.Via()
	if via == nil {
		return from
	}
	port := uint16(5060)
	if via.Port > 0 {
		port = uint16(via.Port)
	}
	if via.Params == nil {
		via.Params = sip.NewParams()
	}
	if rport, ok := via.Params.Get("rport"); ok && rport == "" {
		via.Params.Add("rport", strconv.Itoa(int(from.Port())))
		port = from.Port()
		via.Params.Add("received", from.Addr().String())
	} else if ip, err := netip.ParseAddr(via.Host); err != nil || ip != from.Addr() {
		via.Params.Add("received", from.Addr().String())
	}
	return netip.AddrPortFrom(from.Addr(), port)
}

// receiveStream is sipgo's transport layer handing over a message read from
// a stream connection (or from a UDP socket sipgo opened itself, which
// callpath never asks for).
func (s *Stack) receiveStream(msg sip.Message) {
	var r route
	if req, ok := msg.(*sip.Request); ok && !req.IsAck() {
		conn, err := s.tpl.GetConnection(req.Transport(), req.Source())
		if err != nil || conn == nil {
			s.log.WithField("source", req.Source()).Debug("request from a connection that is gone")
			return
		}
		r.stream = conn
	}
	s.receive(msg, r)
}
