package sipstack

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sirupsen/logrus"
)

// testPKI is a throw-away CA that issues server certificates for names.
type testPKI struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

var serial atomic.Int64

func newTestPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testPKI{cert: cert, key: key, pool: pool}
}

// leaf issues a server certificate for the names and addresses.
func (p *testPKI) leaf(t *testing.T, names []string, ips ...net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: names, IPAddresses: ips,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// newStreamStack is a stack with no sockets of its own, closed at the end of
// the test.
func newStreamStack(t *testing.T, clientTLS *tls.Config, handler Handler) *Stack {
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
	s := New(Config{
		T1: testT1, T2: 4 * testT1, T4: 5 * testT1, Linger: 20 * testT1,
		ClientTLS: clientTLS, Log: logrus.NewEntry(quiet),
		SipgoLog: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, handler)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// tasServer is a TAS: a second stack serving TLS with cert on 127.0.0.1:0,
// answering 200 to every request.
type tasServer struct {
	stack    *Stack
	addr     netip.AddrPort
	accepted atomic.Int32 // TCP connections accepted

	mu      sync.Mutex
	sni     []string // server names the clients asked for
	sources []string // where each request came from
}

func newTASServer(t *testing.T, cert tls.Certificate) *tasServer {
	t.Helper()
	srv := &tasServer{}
	srv.stack = newStreamStack(t, nil, func(req *sip.Request, tx sip.ServerTransaction) {
		srv.mu.Lock()
		srv.sources = append(srv.sources, req.Source())
		srv.mu.Unlock()
		if tx != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		}
	})
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.addr = l.Addr().(*net.TCPAddr).AddrPort()
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			srv.mu.Lock()
			srv.sni = append(srv.sni, hello.ServerName)
			srv.mu.Unlock()
			return nil, nil
		},
	}
	done := make(chan error, 1)
	go func() { done <- srv.stack.ServeTLS(tls.NewListener(&countingListener{l, &srv.accepted}, cfg)) }()
	t.Cleanup(func() {
		_ = srv.stack.Close()
		_ = l.Close()
		<-done
	})
	return srv
}

func (srv *tasServer) lastSource() string {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.sources) == 0 {
		return ""
	}
	return srv.sources[len(srv.sources)-1]
}

type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// tlsRequest builds a request over TLS to uri, sent to dest.
func tlsRequest(method sip.RequestMethod, uri sip.Uri, dest, branch string) *sip.Request {
	req := sip.NewRequest(method, uri)
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "TLS", Host: "127.0.0.1", Port: 5061, Params: sip.NewParams()}
	via.Params.Add("branch", branch)
	req.AppendHeader(via)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sips", User: "b2bua", Host: "callpath.test"}, Params: sip.NewParams()}
	from.Params.Add("tag", "us")
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: uri, Params: sip.NewParams()})
	cid := sip.CallIDHeader(branch + "@tls")
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: method})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.SetBody(nil)
	req.SetDestination(dest)
	return req
}

// roundTrip sends req from s and waits for its final response's code.
func roundTrip(t *testing.T, s *Stack, req *sip.Request) int {
	t.Helper()
	got := make(chan int, 1)
	failed := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.RequestFunc(ctx, req, Callbacks{
		Response: func(res *sip.Response) {
			if res.StatusCode >= 200 {
				got <- res.StatusCode
			}
		},
		Failure: func(err error) { failed <- err },
	}); err != nil {
		t.Fatalf("%s: %v", req.Method, err)
	}
	select {
	case code := <-got:
		return code
	case err := <-failed:
		t.Fatalf("%s failed: %v", req.Method, err)
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no final response", req.Method)
	}
	return 0
}

// pooled is what the stack's TLS pool has under key (nil: nothing).
func pooled(s *Stack, key string) sip.Connection {
	c := s.tpl.Pool("tls").Get(key)
	if c != nil {
		_, _ = c.TryClose()
	}
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-poll.C:
		}
	}
}

var tasURI = sip.Uri{Scheme: "sips", User: "tas", Host: "tas.test"}

// DialTLS verifies the TAS for the URI's host (SNI and certificate), and
// the connection it makes carries requests both ways: our OPTIONS gets its
// 200 over it, and a request the TAS sends back to where ours came from
// reaches our handler and its 200 goes back, with no second connection.
func TestDialTLSBothWays(t *testing.T) {
	pki := newTestPKI(t, "test CA")
	tas := newTASServer(t, pki.leaf(t, []string{"tas.test"}))
	fromTAS := make(chan *sip.Request, 1)
	s := newStreamStack(t, nil, func(req *sip.Request, tx sip.ServerTransaction) {
		fromTAS <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	ctx := context.Background()
	if err := s.DialTLS(ctx, tas.addr, "tas.test", &tls.Config{RootCAs: pki.pool}); err != nil {
		t.Fatal(err)
	}
	key := tas.addr.String()
	ours, ok := pooled(s, key).(*tlsConn)
	if !ok {
		t.Fatalf("pool has %T under %s, want ours", pooled(s, key), key)
	}
	if got := ours.conn.ConnectionState().Version; got < tls.VersionTLS12 {
		t.Fatalf("TLS version %x", got)
	}
	if code := roundTrip(t, s, tlsRequest(sip.OPTIONS, tasURI, key, "z9hG4bK-tls1")); code != 200 {
		t.Fatalf("OPTIONS got %d", code)
	}
	src := tas.lastSource()
	if src != ours.LocalAddr().String() {
		t.Fatalf("TAS got the OPTIONS from %s, our connection is %s", src, ours.LocalAddr())
	}

	// The TAS sends a request back, to where ours came from.
	back := tlsRequest(sip.INFO, sip.Uri{Scheme: "sips", User: "b2bua", Host: "127.0.0.1"}, src, "z9hG4bK-tas1")
	if code := roundTrip(t, tas.stack, back); code != 200 {
		t.Fatalf("INFO from the TAS got %d", code)
	}
	select {
	case req := <-fromTAS:
		if req.Method != sip.INFO || req.Transport() != "TLS" || req.Source() != key {
			t.Fatalf("handler got %s over %s from %s", req.Method, req.Transport(), req.Source())
		}
	default:
		t.Fatal("the TAS's INFO did not reach the handler")
	}
	if n := tas.accepted.Load(); n != 1 {
		t.Fatalf("TAS accepted %d connections, want 1", n)
	}
	tas.mu.Lock()
	sni := tas.sni
	tas.mu.Unlock()
	if len(sni) != 1 || sni[0] != "tas.test" {
		t.Fatalf("SNI %q, want [tas.test]", sni)
	}
}

// A certificate for another name, or from a CA not in the pool, fails the
// dial with the x509 error, and leaves nothing in the pool.
func TestDialTLSVerifies(t *testing.T) {
	pki := newTestPKI(t, "test CA")
	// Valid for 127.0.0.1 too, which is what sipgo verifies a connection to
	// an address against: not good enough for another name.
	tas := newTASServer(t, pki.leaf(t, []string{"tas.test"}, net.IPv4(127, 0, 0, 1)))
	other := newTASServer(t, pki.leaf(t, []string{"other.test"}))
	stranger := newTestPKI(t, "someone else's CA")
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		addr   netip.AddrPort
		server string
		roots  *x509.CertPool
		check  func(error) bool
	}{
		{"wrong name", tas.addr, "wrong.test", pki.pool, isHostnameError},
		{"another's certificate", other.addr, "tas.test", pki.pool, isHostnameError},
		{"untrusted CA", tas.addr, "tas.test", stranger.pool, func(err error) bool {
			var ua x509.UnknownAuthorityError
			return errors.As(err, &ua)
		}},
		{"no CA pool: system roots", tas.addr, "tas.test", nil, func(err error) bool {
			var ua x509.UnknownAuthorityError
			return errors.As(err, &ua)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStreamStack(t, nil, nil)
			err := s.DialTLS(ctx, tc.addr, tc.server, &tls.Config{RootCAs: tc.roots})
			if err == nil || !tc.check(err) {
				t.Fatalf("DialTLS: %v", err)
			}
			if !strings.Contains(err.Error(), tc.server) || !strings.Contains(err.Error(), tc.addr.String()) {
				t.Fatalf("error names neither the server name nor the address: %v", err)
			}
			if n := s.tpl.Pool("tls").Size(); n != 0 {
				t.Fatalf("%d pool entries after a failed dial", n)
			}
		})
	}
	if n := other.accepted.Load(); n != 1 {
		t.Fatalf("other.test accepted %d", n)
	}
}

func isHostnameError(err error) bool {
	var he x509.HostnameError
	return errors.As(err, &he)
}

// Another DialTLS for the same address reuses the connection for the same
// name, and for another name its certificate is valid for; a name it is not
// valid for, or roots that do not trust it, are ErrTLSNameConflict and leave
// it in place. Concurrent first dials open one connection.
func TestDialTLSReuse(t *testing.T) {
	pki := newTestPKI(t, "test CA")
	tas := newTASServer(t, pki.leaf(t, []string{"tas.test", "alias.test"}))
	s := newStreamStack(t, nil, nil)
	cfg := &tls.Config{RootCAs: pki.pool}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- s.DialTLS(ctx, tas.addr, "tas.test", cfg) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := tas.accepted.Load(); n != 1 {
		t.Fatalf("8 concurrent dials opened %d connections", n)
	}
	first := pooled(s, tas.addr.String())
	if err := s.DialTLS(ctx, tas.addr, "alias.test", cfg); err != nil {
		t.Fatalf("alias.test, in the certificate: %v", err)
	}
	err := s.DialTLS(ctx, tas.addr, "other.test", cfg)
	if !errors.Is(err, ErrTLSNameConflict) || !isHostnameError(err) {
		t.Fatalf("other.test: %v, want ErrTLSNameConflict", err)
	}
	err = s.DialTLS(ctx, tas.addr, "tas.test", &tls.Config{RootCAs: newTestPKI(t, "stranger").pool})
	if !errors.Is(err, ErrTLSNameConflict) {
		t.Fatalf("untrusting roots: %v, want ErrTLSNameConflict", err)
	}
	if n := tas.accepted.Load(); n != 1 {
		t.Fatalf("TAS accepted %d connections, want 1", n)
	}
	if pooled(s, tas.addr.String()) != first {
		t.Fatal("the pooled connection changed")
	}
	if code := roundTrip(t, s, tlsRequest(sip.OPTIONS, tasURI, tas.addr.String(), "z9hG4bK-reuse")); code != 200 {
		t.Fatalf("OPTIONS got %d", code)
	}
}

// A connection sipgo dialed itself for a request without DialTLS (verified
// against the destination IP only) is replaced in the pool by DialTLS's,
// which the next request uses; the displaced one is closed with the stack.
// When the peer closes ours, it leaves the pool and the next DialTLS dials
// again; Stack.Close closes ours.
func TestDialTLSReplaceAndClose(t *testing.T) {
	pki := newTestPKI(t, "test CA")
	tas := newTASServer(t, pki.leaf(t, []string{"tas.test"}, net.IPv4(127, 0, 0, 1)))
	s := newStreamStack(t, &tls.Config{RootCAs: pki.pool}, nil)
	key := tas.addr.String()
	if code := roundTrip(t, s, tlsRequest(sip.OPTIONS, tasURI, key, "z9hG4bK-sipgo")); code != 200 {
		t.Fatalf("OPTIONS over sipgo's connection got %d", code)
	}
	if _, ok := pooled(s, key).(*sip.TCPConnection); !ok {
		t.Fatalf("pool has %T, want sipgo's", pooled(s, key))
	}
	sipgoSrc := tas.lastSource()

	if err := s.DialTLS(context.Background(), tas.addr, "tas.test", nil); err != nil { // nil: Config.ClientTLS
		t.Fatal(err)
	}
	ours, ok := pooled(s, key).(*tlsConn)
	if !ok {
		t.Fatalf("pool has %T after DialTLS, want ours", pooled(s, key))
	}
	if code := roundTrip(t, s, tlsRequest(sip.OPTIONS, tasURI, key, "z9hG4bK-ours")); code != 200 {
		t.Fatalf("OPTIONS over ours got %d", code)
	}
	if src := tas.lastSource(); src == sipgoSrc || src != ours.LocalAddr().String() {
		t.Fatalf("second OPTIONS came from %s (sipgo's %s, ours %s)", src, sipgoSrc, ours.LocalAddr())
	}
	s.tlsOut.mu.Lock()
	displaced := len(s.tlsOut.displaced)
	s.tlsOut.mu.Unlock()
	if displaced != 1 {
		t.Fatalf("%d displaced connections remembered", displaced)
	}

	// The TAS closes ours: it leaves the pool, and DialTLS dials again.
	srvPool := tas.stack.tpl.Pool("tls")
	if c := srvPool.Get(ours.LocalAddr().String()); c == nil {
		t.Fatal("TAS has no connection from ours")
	} else {
		_ = c.Close()
	}
	waitFor(t, "our connection to leave the pool", func() bool { return pooled(s, key) == nil })
	waitFor(t, "our connection to be forgotten", func() bool {
		s.tlsOut.mu.Lock()
		defer s.tlsOut.mu.Unlock()
		return len(s.tlsOut.conns) == 0
	})
	if !ours.isClosed() {
		t.Fatal("our connection not closed after the peer closed it")
	}
	if err := s.DialTLS(context.Background(), tas.addr, "tas.test", nil); err != nil {
		t.Fatal(err)
	}
	if n := tas.accepted.Load(); n != 3 {
		t.Fatalf("TAS accepted %d connections, want 3 (sipgo's, ours, ours again)", n)
	}
	if code := roundTrip(t, s, tlsRequest(sip.OPTIONS, tasURI, key, "z9hG4bK-again")); code != 200 {
		t.Fatalf("OPTIONS over the new connection got %d", code)
	}

	// Closing the stack closes ours and sipgo's: the TAS sees both go. So
	// that this is the stack's own doing and not sipgo's pool, which closes
	// what it holds, drop what the pool holds for either: ours under the
	// address (as when a connection the TAS opened from that address takes
	// its place), sipgo's under its local address (which a connection the
	// TAS opened would not have).
	ours = pooled(s, key).(*tlsConn)
	s.tpl.Pool("tls").Delete(key)
	s.tpl.Pool("tls").Delete(sipgoSrc)
	if n := s.tpl.Pool("tls").Size(); n != 0 {
		t.Fatalf("%d pool entries left", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the TAS to see every connection closed", func() bool { return srvPool.Size() == 0 })
	if !ours.isClosed() {
		t.Fatal("ours not closed")
	}
	if err := s.DialTLS(context.Background(), tas.addr, "tas.test", nil); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("DialTLS after Close: %v", err)
	}
}

// The reader answers a CRLF CRLF ping between messages with a CRLF pong
// (RFC 5626 §3.5.1), ignores a lone CRLF there, and inside a message takes a
// CRLF that arrives alone (the end of the headers) as part of it.
func TestDialTLSKeepaliveAndFraming(t *testing.T) {
	pki := newTestPKI(t, "test CA")
	l, err := tls.Listen("tcp4", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{pki.leaf(t, []string{"tas.test"})}, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		if err := c.(*tls.Conn).Handshake(); err != nil {
			_ = c.Close()
			return
		}
		accepted <- c
	}()
	s := newStreamStack(t, nil, nil)
	addr := l.Addr().(*net.TCPAddr).AddrPort()
	if err := s.DialTLS(context.Background(), addr, "tas.test", &tls.Config{RootCAs: pki.pool}); err != nil {
		t.Fatal(err)
	}
	var peer net.Conn
	select {
	case peer = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
	}
	defer peer.Close()
	_ = peer.SetDeadline(time.Now().Add(5 * time.Second))
	rd := bufio.NewReader(peer)
	write := func(s string) {
		t.Helper()
		if _, err := peer.Write([]byte(s)); err != nil { // one TLS record each
			t.Fatal(err)
		}
	}

	write("\r\n\r\n")
	pong := make([]byte, 2)
	if _, err := io.ReadFull(rd, pong); err != nil || string(pong) != "\r\n" {
		t.Fatalf("pong %q, %v", pong, err)
	}
	write("\r\n") // a pong of the peer's: no answer
	local := peer.RemoteAddr().String()
	write("OPTIONS sips:b2bua@" + local + " SIP/2.0\r\n" +
		"Via: SIP/2.0/TLS " + addr.String() + ";branch=z9hG4bK-frame\r\n" +
		"Max-Forwards: 70\r\nFrom: <sips:tas@tas.test>;tag=t1\r\nTo: <sips:b2bua@callpath.test>\r\n" +
		"Call-ID: frame@tas\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n")
	write("\r\n") // the end of the headers, alone
	status, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "SIP/2.0 200") {
		t.Fatalf("after the OPTIONS: %q, %v (the pong must not be answered, the CRLF must end the headers)", status, err)
	}
}

// The pool key is what sipgo's ClientRequestConnection looks up for the
// same address.
func TestTLSPoolKeyMatchesSipgo(t *testing.T) {
	for _, s := range []string{"127.0.0.1:5061", "[2001:db8::1]:5061", "[::ffff:192.0.2.1]:5071", "[fe80::1%eth0]:5061"} {
		ap := netip.MustParseAddrPort(s)
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		sipgo := (&sip.Addr{IP: net.IP(ap.Addr().AsSlice()), Port: int(ap.Port())}).String()
		if got := tlsPoolKey(ap); got != sipgo {
			t.Errorf("%s: key %s, sipgo looks up %s", s, got, sipgo)
		}
	}
}
