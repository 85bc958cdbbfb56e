package upstream_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/sirupsen/logrus"

	"callpath/sipstack"
	"callpath/upstream"
)

// The registrar of these tests is a sipgo server (an independent SIP
// implementation) that checks digest credentials the way RFC 3261 §22 and
// RFC 8760 say; callpath's side is its own transaction layer (sipstack) on
// a real UDP socket. Time is a fake clock the tests advance, so refresh and
// retry timings are checked without waiting.

const testT1 = 20 * time.Millisecond

// stackUA is the UA the client registers through: a sipstack.Stack on
// 127.0.0.1, adding our Via the way the B2BUA does.
type stackUA struct {
	s    *sipstack.Stack
	host string
	port int
}

func newStackUA(t *testing.T) *stackUA {
	t.Helper()
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	s := sipstack.New(sipstack.Config{T1: testT1, T2: 4 * testT1, T4: 5 * testT1, Log: logrus.NewEntry(quiet)},
		func(req *sip.Request, tx sip.ServerTransaction) {})
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServeUDP(conn) }()
	t.Cleanup(func() {
		_ = s.Close()
		_ = conn.Close()
		<-done
	})
	addr := conn.LocalAddr().(*net.UDPAddr)
	return &stackUA{s: s, host: "127.0.0.1", port: addr.Port}
}

func (u *stackUA) Request(ctx context.Context, req *sip.Request, cb sipstack.Callbacks) (sip.ClientTransaction, error) {
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: req.Transport(),
		Host: u.host, Port: u.port, Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranch())
	req.PrependHeader(via)
	return u.s.RequestFunc(ctx, req, cb)
}

func (u *stackUA) Contact(string) sip.Uri { return sip.Uri{Scheme: "sip", Host: u.host, Port: u.port} }

// fakeClock runs timers when the test advances it; a zero delay runs at
// once (on its own goroutine, as time.AfterFunc would).
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool
	fired   bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) upstream.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	if d <= 0 {
		t.fired = true
		go f()
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped && !t.fired
	t.stopped = true
	return was
}

// NextAt is when the earliest pending timer is due (zero: none).
func (c *fakeClock) NextAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Time
	for _, t := range c.timers {
		if !t.stopped && (next.IsZero() || t.at.Before(next)) {
			next = t.at
		}
	}
	return next
}

// Advance moves time on and fires the timers now due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	kept := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.fired = true
			due = append(due, t.f)
		default:
			kept = append(kept, t)
		}
	}
	c.timers = kept
	c.mu.Unlock()
	for _, f := range due {
		go f()
	}
}

// registrar is a digest-checking registrar on 127.0.0.1 (sipgo server).
type registrar struct {
	t         *testing.T
	addr      string
	realm     string
	algorithm string
	password  string
	minExp    int // 423 below this (0: none)
	maxExp    int // grants at most this
	// override, if set, answers instead of the normal logic (nil: normal).
	override func(req *sip.Request) *sip.Response

	mu       sync.Mutex
	reqs     []*sip.Request
	nonces   map[string]bool // issued and still valid
	bindings map[string]int  // contact URI -> expires
	notify   chan struct{}
	nonceN   int
}

func newRegistrar(t *testing.T, password string) *registrar {
	t.Helper()
	r := &registrar{t: t, realm: "callpath.test", algorithm: "MD5", password: password, maxExp: 3600,
		nonces: map[string]bool{}, bindings: map[string]int{}, notify: make(chan struct{}, 1)}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-registrar"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnRegister(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(r.handle(req))
	})
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = conn.LocalAddr().String()
	go func() { _ = srv.ServeUDP(conn) }()
	t.Cleanup(func() { _ = ua.Close(); _ = conn.Close() })
	return r
}

func (r *registrar) handle(req *sip.Request) *sip.Response {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	override := r.override
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	if override != nil {
		if res := override(req); res != nil {
			return res
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ok, stale := r.authorized(req); !ok {
		r.nonceN++
		nonce := "n" + strconv.Itoa(r.nonceN)
		r.nonces[nonce] = true
		res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
		chal := &digest.Challenge{Realm: r.realm, Nonce: nonce, Algorithm: r.algorithm, QOP: []string{"auth"}, Stale: stale}
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", chal.String()))
		return res
	}
	exp := 3600
	if h := req.GetHeader("Expires"); h != nil {
		exp, _ = strconv.Atoi(h.Value())
	}
	contact := req.GetHeader("Contact")
	if contact != nil && contact.Value() == "*" {
		r.bindings = map[string]int{}
		return sip.NewResponseFromRequest(req, 200, "OK", nil)
	}
	ch, _ := contact.(*sip.ContactHeader)
	if exp == 0 {
		delete(r.bindings, ch.Address.String())
		return sip.NewResponseFromRequest(req, 200, "OK", nil)
	}
	if r.minExp > 0 && exp < r.minExp {
		res := sip.NewResponseFromRequest(req, 423, "Interval Too Brief", nil)
		res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(r.minExp)))
		return res
	}
	exp = min(exp, r.maxExp)
	r.bindings[ch.Address.String()] = exp
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	for uri, e := range r.bindings {
		res.AppendHeader(sip.NewHeader("Contact", "<"+uri+">;expires="+strconv.Itoa(e)))
	}
	return res
}

// authorized checks the request's credentials against an issued nonce;
// stale says they were right but for a nonce no longer valid (RFC 2617
// §3.2.1). Called with r.mu held.
func (r *registrar) authorized(req *sip.Request) (ok, stale bool) {
	h := req.GetHeader("Authorization")
	if h == nil {
		return false, false
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil || cred.Realm != r.realm {
		return false, false
	}
	chal := &digest.Challenge{Realm: r.realm, Nonce: cred.Nonce, Algorithm: r.algorithm, QOP: []string{"auth"}}
	want, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: cred.URI, Username: cred.Username,
		Password: r.password, Count: cred.Nc, Cnonce: cred.Cnonce})
	right := err == nil && want.Response == cred.Response
	return right && r.nonces[cred.Nonce], right && !r.nonces[cred.Nonce]
}

// configure changes the registrar's behaviour under its lock (its handler
// runs on sipgo's goroutines).
func (r *registrar) configure(f func(r *registrar)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// expireNonces forgets the issued nonces (the registrar restarted, or they
// aged out): the next credentials get a new challenge, marked stale.
func (r *registrar) expireNonces() {
	r.mu.Lock()
	r.nonces = map[string]bool{}
	r.mu.Unlock()
}

func (r *registrar) requests() []*sip.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*sip.Request(nil), r.reqs...)
}

// waitRequests waits until the registrar has received n requests.
func (r *registrar) waitRequests(n int) []*sip.Request {
	r.t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		if reqs := r.requests(); len(reqs) >= n {
			return reqs
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			r.t.Fatalf("registrar got %d requests, want %d", len(r.requests()), n)
		}
	}
}

// events records a client's events.
type events struct {
	mu  sync.Mutex
	all []upstream.Event
}

func (e *events) add(ev upstream.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

func (e *events) list() []upstream.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]upstream.Event(nil), e.all...)
}

// eventually polls cond until it holds or 5 s have passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// waitState polls until the registration is in state.
func waitState(t *testing.T, c *upstream.Client, id string, state upstream.State) upstream.Status {
	t.Helper()
	var st upstream.Status
	eventually(t, fmt.Sprintf("registration %s %v", id, state), func() bool {
		st, _ = c.Status(id)
		return st.State == state
	})
	return st
}

func header(req *sip.Request, name string) string {
	if h := req.GetHeader(name); h != nil {
		return strings.TrimSpace(h.Value())
	}
	return ""
}
