package sipstack

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sirupsen/logrus"

	"callpath/internal/siptest"
)

// Short timers so that retransmissions and timeouts show within a test.
const testT1 = 50 * time.Millisecond

// newTestStack serves a stack on 127.0.0.1:0; handler may be nil (every
// request then gets 200).
func newTestStack(t *testing.T, handler Handler) (*Stack, string) {
	t.Helper()
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	if handler == nil {
		handler = func(req *sip.Request, tx sip.ServerTransaction) {
			if tx != nil {
				_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
			}
		}
	}
	s := New(Config{T1: testT1, T2: 4 * testT1, T4: 5 * testT1, Linger: 20 * testT1, Log: logrus.NewEntry(quiet)}, handler)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServeUDP(conn) }()
	t.Cleanup(func() {
		_ = s.Close()
		_ = conn.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeUDP: %v", err)
		}
	})
	return s, conn.LocalAddr().String()
}

func invite(from *siptest.RawUDP, to, branch string) string {
	return "INVITE sip:bob@" + to + " SIP/2.0\n" +
		"Via: SIP/2.0/UDP " + from.Addr() + ";branch=" + branch + "\n" +
		"Max-Forwards: 70\nFrom: <sip:alice@127.0.0.1>;tag=a1\nTo: <sip:bob@127.0.0.1>\n" +
		"Call-ID: " + branch + "@test\nCSeq: 1 INVITE\nContact: <sip:alice@" + from.Addr() + ">\nContent-Length: 0\n\n"
}

// An INVITE retransmission gets the last provisional response again; a
// non-2xx final is retransmitted (Timer G) until the ACK, which the
// transaction absorbs; the handler sees the INVITE once and no ACK.
func TestServerInviteRetransmissions(t *testing.T) {
	var mu sync.Mutex
	seen := map[sip.RequestMethod]int{}
	final := make(chan func(), 1)
	_, addr := newTestStack(t, func(req *sip.Request, tx sip.ServerTransaction) {
		mu.Lock()
		seen[req.Method]++
		mu.Unlock()
		if req.IsInvite() {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 180, "Ringing", nil))
			final <- func() { _ = tx.Respond(sip.NewResponseFromRequest(req, 486, "Busy Here", nil)) }
		}
	})
	peer := siptest.NewRawUDP(t)
	inv := invite(peer, addr, "z9hG4bK-srv1")
	peer.Send(addr, inv)
	peer.Expect("SIP/2.0 180", time.Second)
	peer.Send(addr, inv) // retransmission
	peer.Expect("SIP/2.0 180", time.Second)
	(<-final)()
	first := peer.Expect("SIP/2.0 486", time.Second)
	peer.Expect("SIP/2.0 486", 2*time.Second) // Timer G
	ack := "ACK sip:bob@" + addr + " SIP/2.0\nVia: SIP/2.0/UDP " + peer.Addr() + ";branch=z9hG4bK-srv1\nMax-Forwards: 70\n" +
		"From: <sip:alice@127.0.0.1>;tag=a1\nTo: " + siptest.Header(first, "To") + "\nCall-ID: z9hG4bK-srv1@test\nCSeq: 1 ACK\nContent-Length: 0\n\n"
	peer.Send(addr, ack)
	peer.ExpectNothing("SIP/2.0 486", 10*testT1)
	mu.Lock()
	defer mu.Unlock()
	if seen[sip.INVITE] != 1 || seen[sip.ACK] != 0 {
		t.Fatalf("handler saw %v, want one INVITE and no ACK", seen)
	}
}

// A CANCEL that matches a ringing INVITE gets 200, the INVITE 487, and the
// transaction's OnCancel callback runs.
func TestServerCancel(t *testing.T) {
	cancelled := make(chan struct{})
	_, addr := newTestStack(t, func(req *sip.Request, tx sip.ServerTransaction) {
		if req.IsInvite() {
			tx.OnCancel(func(*sip.Request) { close(cancelled) })
			_ = tx.Respond(sip.NewResponseFromRequest(req, 180, "Ringing", nil))
			return
		}
		t.Errorf("handler got %s", req.Method)
	})
	peer := siptest.NewRawUDP(t)
	peer.Send(addr, invite(peer, addr, "z9hG4bK-cancel"))
	peer.Expect("SIP/2.0 180", time.Second)
	peer.Send(addr, "CANCEL sip:bob@"+addr+" SIP/2.0\nVia: SIP/2.0/UDP "+peer.Addr()+";branch=z9hG4bK-cancel\nMax-Forwards: 70\n"+
		"From: <sip:alice@127.0.0.1>;tag=a1\nTo: <sip:bob@127.0.0.1>\nCall-ID: z9hG4bK-cancel@test\nCSeq: 1 CANCEL\nContent-Length: 0\n\n")
	res := peer.Expect("SIP/2.0 200", time.Second)
	if !strings.Contains(siptest.Header(res, "CSeq"), "CANCEL") {
		t.Fatalf("200 is not for the CANCEL: %s", res)
	}
	peer.Expect("SIP/2.0 487", time.Second)
	select {
	case <-cancelled:
	case <-time.After(time.Second):
		t.Fatal("OnCancel not called")
	}
}

// Responses go where RFC 3581 says: with rport to the source port (and the
// Via says received and rport), without it to the Via's port.
func TestServerResponseAddress(t *testing.T) {
	_, addr := newTestStack(t, nil)
	peer := siptest.NewRawUDP(t)
	peer.Send(addr, strings.Replace(invite(peer, addr, "z9hG4bK-rport"), "branch=", "rport;branch=", 1))
	res := peer.Expect("SIP/2.0 200", time.Second)
	via := siptest.Header(res, "Via")
	_, port, _ := net.SplitHostPort(peer.Addr())
	if !strings.Contains(via, "rport="+port) || !strings.Contains(via, "received=127.0.0.1") {
		t.Fatalf("Via of the response: %s", via)
	}
	// Via names another port: the response goes there, not to the source.
	other := siptest.NewRawUDP(t)
	msg := strings.Replace(invite(peer, addr, "z9hG4bK-via"), "Via: SIP/2.0/UDP "+peer.Addr(), "Via: SIP/2.0/UDP "+other.Addr(), 1)
	peer.Send(addr, msg)
	other.Expect("SIP/2.0 200", time.Second)
}

// testRequest builds a request from the stack to peer with a fresh branch.
func testRequest(method sip.RequestMethod, peer *siptest.RawUDP, branch string) *sip.Request {
	host, port, _ := net.SplitHostPort(peer.Addr())
	var p int
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	req := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: "bob", Host: host, Port: p})
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.1", Port: 5060, Params: sip.NewParams()}
	via.Params.Add("branch", branch)
	req.AppendHeader(via)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", "us")
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: host}, Params: sip.NewParams()})
	cid := sip.CallIDHeader(branch + "@stack")
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: method})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.SetBody(nil)
	return req
}

// A client INVITE is retransmitted (Timer A) until a provisional response;
// a non-2xx final is ACKed in the transaction (same branch), and again for
// each retransmission of it; the TU gets 180 and 486 once each.
func TestClientInvite(t *testing.T) {
	s, _ := newTestStack(t, nil)
	peer := siptest.NewRawUDP(t)
	var mu sync.Mutex
	var got []int
	finalSeen := make(chan struct{})
	_, err := s.RequestFunc(context.Background(), testRequest(sip.INVITE, peer, "z9hG4bK-cli1"), Callbacks{
		Response: func(res *sip.Response) {
			mu.Lock()
			got = append(got, res.StatusCode)
			mu.Unlock()
			if res.StatusCode >= 200 {
				close(finalSeen)
			}
		},
		Failure: func(err error) { t.Errorf("failure: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	req := peer.Expect("INVITE ", time.Second)
	peer.Expect("INVITE ", time.Second) // Timer A
	stackAddr := s.udp.LocalAddr().String()
	peer.Send(stackAddr, siptest.ResponseTo(req, 180, "Ringing", "b1", nil, ""))
	// In Proceeding neither Timer A retransmits nor Timer B ends the
	// transaction (RFC 3261 §17.1.1.2: B is for Calling): a callee may
	// ring for minutes, and the TU's own timer decides how long.
	peer.ExpectNothing("INVITE ", 70*testT1)
	busy := siptest.ResponseTo(req, 486, "Busy Here", "b1", nil, "")
	peer.Send(stackAddr, busy)
	ack := peer.Expect("ACK ", time.Second)
	if !strings.Contains(siptest.Header(ack, "Via"), "branch=z9hG4bK-cli1") || !strings.Contains(siptest.Header(ack, "To"), "tag=b1") {
		t.Fatalf("ACK of the non-2xx: %s", ack)
	}
	peer.Send(stackAddr, busy)
	peer.Expect("ACK ", time.Second)
	select {
	case <-finalSeen:
	case <-time.After(5 * time.Second):
		t.Fatal("the TU never got the 486")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != 180 || got[1] != 486 {
		t.Fatalf("TU got %v, want [180 486]", got)
	}
}

// With no answer a client transaction times out after 64*T1 (Timer B/F)
// and says so; a non-INVITE is retransmitted meanwhile (Timer E).
func TestClientTimeout(t *testing.T) {
	s, _ := newTestStack(t, nil)
	peer := siptest.NewRawUDP(t)
	failed := make(chan error, 1)
	start := time.Now()
	if _, err := s.RequestFunc(context.Background(), testRequest(sip.BYE, peer, "z9hG4bK-cli2"), Callbacks{
		Response: func(res *sip.Response) { t.Errorf("response %d", res.StatusCode) },
		Failure:  func(err error) { failed <- err },
	}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		peer.Expect("BYE ", time.Second)
	}
	select {
	case err := <-failed:
		if !errors.Is(err, sip.ErrTransactionTimeout) {
			t.Fatalf("failure %v, want a timeout", err)
		}
		if d := time.Since(start); d < 64*testT1 {
			t.Fatalf("timed out after %s, before 64*T1", d)
		}
	case <-time.After(64*testT1 + 2*time.Second):
		t.Fatal("no timeout")
	}
	if _, client := s.Transactions(); client != 0 {
		t.Fatalf("%d client transactions left", client)
	}
}

// A 2xx that comes again after the first goes to OnRetransmission, not to
// the TU's Response callback; finished transactions are forgotten after
// Linger.
func TestClientInvite2xxRetransmission(t *testing.T) {
	s, _ := newTestStack(t, nil)
	peer := siptest.NewRawUDP(t)
	responses := make(chan int, 4)
	ctr, err := s.RequestFunc(context.Background(), testRequest(sip.INVITE, peer, "z9hG4bK-cli3"), Callbacks{
		Response: func(res *sip.Response) { responses <- res.StatusCode },
	})
	if err != nil {
		t.Fatal(err)
	}
	again := make(chan struct{}, 4)
	ctr.OnRetransmission(func(*sip.Response) { again <- struct{}{} })
	req := peer.Expect("INVITE ", time.Second)
	ok := siptest.ResponseTo(req, 200, "OK", "b2", nil, "")
	stackAddr := s.udp.LocalAddr().String()
	peer.Send(stackAddr, ok)
	if code := <-responses; code != 200 {
		t.Fatalf("TU got %d", code)
	}
	peer.Send(stackAddr, ok)
	select {
	case <-again:
	case <-time.After(time.Second):
		t.Fatal("retransmitted 2xx not handed to OnRetransmission")
	}
	select {
	case code := <-responses:
		t.Fatalf("TU got a second response %d", code)
	default:
	}
	deadline := time.After(20*testT1 + 2*time.Second)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		server, client := s.Transactions()
		if server == 0 && client == 0 {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("transactions left after linger: %d server, %d client", server, client)
		case <-poll.C:
		}
	}
}

// Garbage, keepalives and requests without CSeq never reach the handler;
// a request without CSeq gets 400.
func TestBadInput(t *testing.T) {
	var calls int
	var mu sync.Mutex
	s, addr := newTestStack(t, func(req *sip.Request, tx sip.ServerTransaction) {
		mu.Lock()
		calls++
		mu.Unlock()
	})
	peer := siptest.NewRawUDP(t)
	peer.SendBytes(addr, []byte("\r\n\r\n"))
	peer.SendBytes(addr, []byte("\x00\x01garbage"))
	peer.SendBytes(addr, []byte("INVITE sip:x SIP/2.0\r\nContent-Length: 5000\r\n\r\nshort"))
	peer.Send(addr, strings.Replace(invite(peer, addr, "z9hG4bK-nocseq"), "CSeq: 1 INVITE\n", "", 1))
	peer.Expect("SIP/2.0 400", time.Second)
	// Each read loop takes datagrams on its own: the 400 can come back
	// before another loop has counted the garbage.
	deadline := time.Now().Add(5 * time.Second)
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for s.Stats().Unparseable.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("unparseable datagram not counted")
		}
		<-poll.C
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 0 {
		t.Fatalf("handler called %d times", calls)
	}
}

// The TU retransmits its 2xx for up to 64*T1, longer than a finished
// transaction lingers: over UDP the retransmissions still go out after the
// transaction is forgotten; anything but a 2xx does not.
func TestServer2xxRetransmissionOutlivesTheTransaction(t *testing.T) {
	txs := make(chan sip.ServerTransaction, 1)
	reqs := make(chan *sip.Request, 1)
	s, addr := newTestStack(t, func(req *sip.Request, tx sip.ServerTransaction) {
		if req.IsInvite() {
			reqs <- req
			txs <- tx
		}
	})
	peer := siptest.NewRawUDP(t)
	peer.Send(addr, invite(peer, addr, "z9hG4bK-2xx"))
	tx, req := <-txs, <-reqs
	ok := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if err := tx.Respond(ok); err != nil {
		t.Fatal(err)
	}
	peer.Expect("SIP/2.0 200", time.Second)
	deadline := time.After(20*testT1 + 2*time.Second)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for server, _ := s.Transactions(); server != 0; server, _ = s.Transactions() {
		select {
		case <-deadline:
			t.Fatal("INVITE transaction not forgotten after linger")
		case <-poll.C:
		}
	}
	if err := tx.Respond(ok); err != nil {
		t.Fatalf("2xx retransmission after linger: %v", err)
	}
	peer.Expect("SIP/2.0 200", time.Second)
	if err := tx.Respond(sip.NewResponseFromRequest(req, 486, "Busy Here", nil)); err == nil {
		t.Fatal("a non-2xx after the 2xx was sent")
	}
}
