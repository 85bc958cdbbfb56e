package b2bua

import (
	"strings"

	"github.com/emiago/sipgo/sip"
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
