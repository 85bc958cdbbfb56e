package b2bua

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"

	"callpath/sipstack"
)

// via returns a fresh Via of ours for a request leaving on transport.
func (s *Server) via(transport string) *sip.ViaHeader {
	v := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: transport,
		Host: s.listeners.host, Port: s.listeners.port(transport), Params: sip.NewParams(),
	}
	v.Params.Add("branch", sip.GenerateBranchN(16))
	return v
}

// contact returns our Contact for a leg on transport. The headers are built
// once per transport and shared by every leg and message: sipgo only reads
// them when it serialises.
func (s *Server) contact(transport string) *sip.ContactHeader {
	t := strings.ToLower(transport)
	if c, ok := s.listeners.contacts.Load(t); ok {
		return c.(*sip.ContactHeader)
	}
	c := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: s.listeners.host, Port: s.listeners.port(transport)}}
	if t != "udp" {
		c.Address.UriParams = sip.NewParams()
		if t == "tls" {
			c.Address.Scheme = "sips"
		} else {
			c.Address.UriParams.Add("transport", t)
		}
	}
	actual, _ := s.listeners.contacts.LoadOrStore(t, c)
	return actual.(*sip.ContactHeader)
}

// prepare completes an outgoing request: our Via on top, Max-Forwards and
// User-Agent.
func (s *Server) prepare(req *sip.Request, maxFwd int) {
	tp := transportOf(req)
	req.PrependHeader(s.via(tp))
	mf := sip.MaxForwardsHeader(uint32(maxFwd))
	req.AppendHeader(&mf)
	req.AppendHeader(s.userAgentHdr)
	if req.Body() == nil {
		req.SetBody(nil)
	}
}

// sendAck sends an ACK for a 2xx (it is its own transaction-less request,
// RFC 3261 §13.2.2.4).
func (s *Server) sendAck(ack *sip.Request) error {
	if err := s.stack.Send(s.ctx, ack); err != nil {
		return err
	}
	s.metrics.Request("ACK", "out")
	return nil
}

// Request sends a request callpath originates itself (a REGISTER of the
// upstream registration client) as a new client transaction: our Via on
// top; over TLS, a connection verified for the Request-URI's host to the
// destination first. It may block on that handshake: never call it on a
// read loop.
func (s *Server) Request(ctx context.Context, req *sip.Request, cb sipstack.Callbacks) (sip.ClientTransaction, error) {
	tp := transportOf(req)
	if tp == "TLS" && req.Destination() != "" {
		addr, err := netip.ParseAddrPort(req.Destination())
		if err != nil {
			return nil, fmt.Errorf("destination %q: %w", req.Destination(), err)
		}
		if err := s.stack.DialTLS(ctx, addr, req.Recipient.Host, s.cfg.ClientTLS); err != nil {
			return nil, err
		}
	}
	req.PrependHeader(s.via(tp))
	ctr, err := s.stack.RequestFunc(ctx, req, cb)
	if err != nil {
		return nil, err
	}
	s.metrics.Request(string(req.Method), "out")
	return ctr, nil
}

// Contact is our Contact URI on transport ("UDP", "TCP", "TLS", …).
func (s *Server) Contact(transport string) sip.Uri {
	return *s.contact(transport).Address.Clone()
}
