// Package siptest holds SIP test parts: a phone (a sipgo user agent that
// places and answers calls and records what it received) and raw datagram
// helpers. The phone is a real SIP implementation talking over real sockets
// on loopback; it is sipgo's dialog layer, independent of callpath's own.
package siptest

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Phone is a SIP user agent listening on 127.0.0.1.
type Phone struct {
	t         testing.TB
	Transport string // "udp" or "tcp"
	Addr      string // host:port it listens on
	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	client    *sipgo.Client
	dialogUA  *sipgo.DialogUA
	serverDlg *sipgo.DialogServerCache
	clientDlg *sipgo.DialogClientCache

	incoming chan *Incoming
	mu       sync.Mutex
	received []*sip.Request
	notify   chan struct{}
}

// Incoming is a call the phone received; the test decides how to answer.
type Incoming struct {
	Req     *sip.Request
	Tx      sip.ServerTransaction
	Dialog  *sipgo.DialogServerSession
	release chan struct{}
	once    sync.Once
	final   chan error
}

// NewPhone starts a phone on 127.0.0.1:0 over transport ("udp", "tcp" or
// "ws"; "tls" and "wss" need NewTLSPhone).
func NewPhone(t testing.TB, transport string) *Phone {
	t.Helper()
	return newPhone(t, transport, "127.0.0.1", nil, nil)
}

// NewPhoneOn starts a phone on another loopback address (such as
// 127.0.0.2), for tests where the gateway tells peers apart by address.
func NewPhoneOn(t testing.TB, transport, host string) *Phone {
	t.Helper()
	return newPhone(t, transport, host, nil, nil)
}

// NewTLSPhone starts a phone over "tls" or "wss" that serves and trusts ca.
func NewTLSPhone(t testing.TB, transport string, ca *TestCA) *Phone {
	t.Helper()
	return newPhone(t, transport, "127.0.0.1", ca, nil)
}

// NewTLSPhoneOn starts a phone over "tls" or "wss" on host that serves cert
// (issued by ca) and trusts ca: a TAS with its own name, say.
func NewTLSPhoneOn(t testing.TB, transport, host string, ca *TestCA, cert tls.Certificate) *Phone {
	t.Helper()
	return newPhone(t, transport, host, ca, &cert)
}

func newPhone(t testing.TB, transport, host string, ca *TestCA, cert *tls.Certificate) *Phone {
	opts := []sipgo.UserAgentOption{sipgo.WithUserAgent("siptest-phone")}
	if ca != nil {
		opts = append(opts, sipgo.WithUserAgenTLSConfig(ca.ClientConfig()))
	}
	ua, err := sipgo.NewUA(opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	p := &Phone{t: t, Transport: transport, ua: ua, srv: srv, incoming: make(chan *Incoming, 16), notify: make(chan struct{}, 1)}

	// Handlers are registered before serving starts: sipgo reads its handler
	// map unguarded, and a stray retransmission to a reused port may arrive
	// at once.
	var addr string
	var serve func()
	switch transport {
	case "udp":
		conn, err := net.ListenPacket("udp4", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		addr = conn.LocalAddr().String()
		serve = func() { _ = srv.ServeUDP(conn) }
		t.Cleanup(func() { _ = conn.Close() })
	case "tcp", "ws":
		ln, err := net.Listen("tcp4", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		if transport == "ws" {
			serve = func() { _ = srv.ServeWS(ln) }
		} else {
			serve = func() { _ = srv.ServeTCP(ln) }
		}
		t.Cleanup(func() { _ = ln.Close() })
	case "tls", "wss":
		if ca == nil {
			t.Fatalf("siptest: %s needs NewTLSPhone", transport)
		}
		serverCfg := ca.ServerConfig()
		if cert != nil {
			serverCfg.Certificates = []tls.Certificate{*cert}
		}
		ln, err := tls.Listen("tcp4", net.JoinHostPort(host, "0"), serverCfg)
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		if transport == "wss" {
			serve = func() { _ = srv.ServeWSS(ln) }
		} else {
			serve = func() { _ = srv.ServeTLS(ln) }
		}
		t.Cleanup(func() { _ = ln.Close() })
	default:
		t.Fatalf("siptest: transport %q", transport)
	}
	p.Addr = addr
	host, port, _ := net.SplitHostPort(addr)
	portNum, _ := strconv.Atoi(port)
	clientOpts := []sipgo.ClientOption{sipgo.WithClientHostname(host), sipgo.WithClientPort(portNum)}
	if host != "127.0.0.1" && transport == "udp" {
		// Requests leave from the listening socket, so that the gateway
		// sees this phone's own address as their source.
		clientOpts = append(clientOpts, sipgo.WithClientConnectionAddr(addr))
	}
	p.client, err = sipgo.NewClient(ua, clientOpts...)
	if err != nil {
		t.Fatal(err)
	}
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "phone", Host: host, Port: portNum}}
	if transport != "udp" {
		contact.Address.UriParams = sip.NewParams()
		contact.Address.UriParams.Add("transport", transport)
	}
	p.dialogUA = &sipgo.DialogUA{Client: p.client, ContactHDR: contact}
	p.serverDlg = sipgo.NewDialogServerCache(p.client, contact)
	p.clientDlg = sipgo.NewDialogClientCache(p.client, contact)

	srv.OnInvite(p.onInvite)
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		p.record(req)
		_ = p.serverDlg.ReadAck(req, tx)
	})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		p.record(req)
		if err := p.serverDlg.ReadBye(req, tx); err == nil {
			return
		}
		if err := p.clientDlg.ReadBye(req, tx); err == nil {
			return
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	})
	srv.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
		p.record(req)
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	})
	answerOK := func(req *sip.Request, tx sip.ServerTransaction) {
		p.record(req)
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	}
	for _, m := range []sip.RequestMethod{sip.UPDATE, sip.INFO, sip.OPTIONS, sip.MESSAGE} {
		srv.OnRequest(m, answerOK)
	}
	go serve()
	t.Cleanup(func() { _ = ua.Close() })
	return p
}

func (p *Phone) record(req *sip.Request) {
	p.mu.Lock()
	p.received = append(p.received, req)
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// onInvite hands new calls to the test; re-INVITEs are answered 200 with the
// offered SDP's direction mirrored (hold → recvonly) by AnswerReinvite.
func (p *Phone) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	p.record(req)
	if to := req.To(); to != nil && to.Params.Has("tag") {
		body := ReinviteAnswer(req.Body())
		res := sip.NewResponseFromRequest(req, 200, "OK", body)
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.AppendHeader(&p.dialogUA.ContactHDR)
		_ = tx.Respond(res)
		return
	}
	dlg, err := p.serverDlg.ReadInvite(req, tx)
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	in := &Incoming{Req: req, Tx: tx, Dialog: dlg, release: make(chan struct{})}
	p.incoming <- in
	// sipgo ends the transaction when the handler returns: hold it until the
	// test has given its final answer (or the transaction dies).
	select {
	case <-in.release:
	case <-tx.Done():
	case <-time.After(60 * time.Second):
	}
}

// Respond sends a response on the incoming call. A final response is sent in
// the background, because sipgo's dialog waits for its ACK (retransmitting a
// 2xx meanwhile); WaitFinal returns that outcome.
func (in *Incoming) Respond(code int, reason string, body []byte, headers ...sip.Header) error {
	if body != nil {
		headers = append(headers, sip.NewHeader("Content-Type", "application/sdp"))
	}
	if code < 200 {
		return in.Dialog.Respond(code, reason, body, headers...)
	}
	in.once.Do(func() {
		in.final = make(chan error, 1)
		go func() {
			in.final <- in.Dialog.Respond(code, reason, body, headers...)
			close(in.release)
		}()
	})
	return nil
}

// WaitFinal waits for the final response sent by Respond to complete (for a
// 2xx: its ACK arrived) and returns its error.
func (in *Incoming) WaitFinal(timeout time.Duration) error {
	select {
	case err := <-in.final:
		return err
	case <-time.After(timeout):
		return context.DeadlineExceeded
	}
}

// NextCall waits for the next incoming INVITE.
func (p *Phone) NextCall(timeout time.Duration) *Incoming {
	p.t.Helper()
	select {
	case in := <-p.incoming:
		return in
	case <-time.After(timeout):
		p.t.Fatalf("phone %s: no incoming call within %s", p.Addr, timeout)
		return nil
	}
}

// NoCall asserts that no INVITE arrives within d.
func (p *Phone) NoCall(d time.Duration) {
	p.t.Helper()
	select {
	case in := <-p.incoming:
		p.t.Fatalf("phone %s: unexpected call %s", p.Addr, in.Req.StartLine())
	case <-time.After(d):
	}
}

// WaitRequest waits until the phone has received a request matching match,
// and returns it.
func (p *Phone) WaitRequest(timeout time.Duration, match func(*sip.Request) bool) *sip.Request {
	p.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.received); seen++ {
			if match(p.received[seen]) {
				r := p.received[seen]
				p.mu.Unlock()
				return r
			}
		}
		p.mu.Unlock()
		select {
		case <-p.notify:
		case <-deadline.C:
			p.t.Fatalf("phone %s: no matching request within %s", p.Addr, timeout)
			return nil
		}
	}
}

// Received returns a copy of every request received so far.
func (p *Phone) Received() []*sip.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*sip.Request(nil), p.received...)
}

// Method matches requests by method.
func Method(m sip.RequestMethod) func(*sip.Request) bool {
	return func(r *sip.Request) bool { return r.Method == m }
}

// Invite builds an INVITE from this phone (as +4790000001) to user@gateway.
func (p *Phone) Invite(gateway, user string, sdp []byte, headers ...sip.Header) *sip.Request {
	return p.InviteFrom(gateway, "+4790000001", user, sdp, headers...)
}

// InviteFrom builds an INVITE from this phone as number from to
// user@gateway.
func (p *Phone) InviteFrom(gateway, from, user string, sdp []byte, headers ...sip.Header) *sip.Request {
	host, port, _ := net.SplitHostPort(gateway)
	portNum, _ := strconv.Atoi(port)
	ruri := sip.Uri{Scheme: "sip", User: user, Host: host, Port: portNum}
	if p.Transport != "udp" {
		ruri.UriParams = sip.NewParams()
		ruri.UriParams.Add("transport", p.Transport)
	}
	req := sip.NewRequest(sip.INVITE, ruri)
	phoneHost, _, _ := net.SplitHostPort(p.Addr)
	fromHdr := &sip.FromHeader{DisplayName: "Alice", Address: sip.Uri{Scheme: "sip", User: from, Host: phoneHost}, Params: sip.NewParams()}
	fromHdr.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(fromHdr)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: host}})
	for _, h := range headers {
		req.AppendHeader(h)
	}
	if sdp != nil {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	req.SetBody(sdp)
	return req
}

// Dial sends an INVITE built by Invite and returns the client dialog.
func (p *Phone) Dial(ctx context.Context, req *sip.Request) (*sipgo.DialogClientSession, error) {
	return p.clientDlg.WriteInvite(ctx, req)
}

// Client returns the phone's sipgo client, for hand-made requests.
func (p *Phone) Client() *sipgo.Client { return p.client }

// Contact is the phone's own Contact header.
func (p *Phone) Contact() *sip.ContactHeader { return &p.dialogUA.ContactHDR }

// SDP returns a minimal audio offer from this phone with session version v
// and direction dir ("sendrecv", "sendonly", …).
func SDP(host string, port int, v int, dir string) []byte {
	return []byte("v=0\r\n" +
		"o=- 1000 " + strconv.Itoa(v) + " IN IP4 " + host + "\r\n" +
		"s=-\r\n" +
		"c=IN IP4 " + host + "\r\n" +
		"t=0 0\r\n" +
		"m=audio " + strconv.Itoa(port) + " RTP/AVP 0 101\r\n" +
		"a=rtpmap:0 PCMU/8000\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\n" +
		"a=" + dir + "\r\n")
}

// ReinviteAnswer mirrors the direction of an offer: sendonly becomes recvonly.
func ReinviteAnswer(offer []byte) []byte {
	s := string(offer)
	switch {
	case strings.Contains(s, "a=sendonly"):
		s = strings.Replace(s, "a=sendonly", "a=recvonly", 1)
	case strings.Contains(s, "a=recvonly"):
		s = strings.Replace(s, "a=recvonly", "a=sendonly", 1)
	}
	return []byte(s)
}
