package upstream_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"callpath/internal/dnstest"
	"callpath/upstream"
)

const number = "+4790000001"

// counting is a Metrics that counts.
type counting struct {
	responses, failures, authFailures atomic.Int64
}

func (m *counting) Response(int) { m.responses.Add(1) }
func (m *counting) Failure(bool) { m.failures.Add(1) }
func (m *counting) AuthFailure() { m.authFailures.Add(1) }

type fixture struct {
	client  *upstream.Client
	clock   *fakeClock
	reg     *registrar
	events  *events
	metrics *counting
	ua      *stackUA
}

func newFixture(t *testing.T, cfg upstream.Config, reg *registrar, deps upstream.Deps) *fixture {
	t.Helper()
	f := &fixture{clock: newFakeClock(), reg: reg, events: &events{}, metrics: &counting{}, ua: newStackUA(t)}
	deps.UA, deps.Clock, deps.Metrics = f.ua, f.clock, f.metrics
	c, err := upstream.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.Subscribe(f.events.add)
	f.client = c
	return f
}

func account(reg *registrar) upstream.Account {
	return upstream.Account{ID: "acct-1", Number: number, Domain: "callpath.test", Registrar: "sip:" + reg.addr,
		Password: "secret"}
}

// First REGISTER, 401, REGISTER with credentials (MD5 and SHA-256), 200:
// the binding the registrar granted is the one used, and the REGISTERs
// look as RFC 3261 §10.2 wants them.
func TestRegisterWithDigest(t *testing.T) {
	for _, algorithm := range []string{"MD5", "SHA-256"} {
		t.Run(algorithm, func(t *testing.T) {
			reg := newRegistrar(t, "secret")
			reg.configure(func(r *registrar) { r.algorithm, r.maxExp = algorithm, 600 })
			f := newFixture(t, upstream.Config{Expires: time.Hour, Supported: []string{"path"}, UserAgent: "callpath-test"}, reg, upstream.Deps{})
			if err := f.client.Register(account(reg)); err != nil {
				t.Fatal(err)
			}
			st := waitState(t, f.client, "acct-1", upstream.StateRegistered)
			if want := f.clock.Now().Add(600 * time.Second); !st.Expires.Equal(want) {
				t.Errorf("binding until %v, want the granted 600 s (%v)", st.Expires, want)
			}
			reqs := reg.requests()
			if len(reqs) != 2 {
				t.Fatalf("%d REGISTERs, want 2 (challenge, credentials)", len(reqs))
			}
			first, second := reqs[0], reqs[1]
			if first.GetHeader("Authorization") != nil {
				t.Error("credentials sent before any challenge")
			}
			if !strings.Contains(header(second, "Authorization"), `algorithm=`+algorithm) {
				t.Errorf("Authorization %q", header(second, "Authorization"))
			}
			if first.CallID().Value() != second.CallID().Value() || second.CSeq().SeqNo != first.CSeq().SeqNo+1 {
				t.Error("REGISTERs of one registration need one Call-ID and increasing CSeqs")
			}
			for _, r := range reqs {
				if r.From().Address.User != number || r.To().Address.User != number || r.To().Address.Host != "callpath.test" {
					t.Errorf("From %s To %s, want the address of record", r.From().Address.String(), r.To().Address.String())
				}
				if c := r.Contact(); c == nil || c.Address.User != number {
					t.Errorf("Contact %v: want our address with the number as user", r.Contact())
				}
				if header(r, "Expires") != "3600" || header(r, "Supported") != "path" || header(r, "User-Agent") != "callpath-test" {
					t.Errorf("Expires %q Supported %q User-Agent %q", header(r, "Expires"), header(r, "Supported"), header(r, "User-Agent"))
				}
			}
			var states []upstream.State
			for _, e := range f.events.list() {
				states = append(states, e.State)
			}
			if len(states) != 2 || states[0] != upstream.StateRegistering || states[1] != upstream.StateRegistered {
				t.Errorf("events %v", states)
			}
		})
	}
}

// A binding of 120 s is refreshed 30 s (the margin) before it lapses,
// reusing the challenge (nc=2); when the registrar has forgotten its nonces
// it challenges again with stale=true and the client answers the new nonce.
func TestRefreshBeforeExpiryAndFreshNonce(t *testing.T) {
	reg := newRegistrar(t, "secret")
	reg.configure(func(r *registrar) { r.maxExp = 120 })
	f := newFixture(t, upstream.Config{RefreshMargin: 30 * time.Second}, reg, upstream.Deps{})
	if err := f.client.Register(account(reg)); err != nil {
		t.Fatal(err)
	}
	waitState(t, f.client, "acct-1", upstream.StateRegistered)
	reg.waitRequests(2)

	if next := f.clock.NextAt().Sub(f.clock.Now()); next != 90*time.Second {
		t.Fatalf("refresh due in %v, want 90 s (120 s binding, 30 s margin)", next)
	}
	f.clock.Advance(90 * time.Second)
	reqs := reg.waitRequests(3)
	if !strings.Contains(header(reqs[2], "Authorization"), "nc=00000002") {
		t.Errorf("refresh did not reuse the challenge: %q", header(reqs[2], "Authorization"))
	}
	waitState(t, f.client, "acct-1", upstream.StateRegistered)

	reg.expireNonces()
	f.clock.Advance(90 * time.Second)
	reqs = reg.waitRequests(5)
	if !strings.Contains(header(reqs[4], "Authorization"), `nonce="n2"`) {
		t.Errorf("after a stale nonce: %q", header(reqs[4], "Authorization"))
	}
	st := waitState(t, f.client, "acct-1", upstream.StateRegistered)
	if want := f.clock.Now().Add(120 * time.Second); !st.Expires.Equal(want) {
		t.Errorf("binding until %v, want %v", st.Expires, want)
	}
	if f.metrics.authFailures.Load() != 0 {
		t.Error("a stale nonce counted as an authentication failure")
	}
}

// 423 Interval Too Brief: the client asks again with Min-Expires.
func TestIntervalTooBrief(t *testing.T) {
	reg := newRegistrar(t, "secret")
	reg.configure(func(r *registrar) { r.minExp = 900 })
	f := newFixture(t, upstream.Config{}, reg, upstream.Deps{})
	a := account(reg)
	a.Expires = 300 * time.Second
	if err := f.client.Register(a); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, f.client, "acct-1", upstream.StateRegistered)
	reqs := reg.requests()
	if got := header(reqs[len(reqs)-1], "Expires"); got != "900" {
		t.Fatalf("last REGISTER asked for %s s, want Min-Expires 900", got)
	}
	if want := f.clock.Now().Add(900 * time.Second); !st.Expires.Equal(want) {
		t.Errorf("binding until %v, want %v", st.Expires, want)
	}
}

// A wrong password: the credentials are challenged again (not stale): the
// registration fails with the reason, counts an authentication failure,
// and retries after the backoff, not at once.
func TestWrongPasswordFails(t *testing.T) {
	reg := newRegistrar(t, "the-right-one")
	f := newFixture(t, upstream.Config{RetryMin: 10 * time.Second, RetryMax: time.Minute}, reg, upstream.Deps{})
	if err := f.client.Register(account(reg)); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, f.client, "acct-1", upstream.StateFailed)
	if !strings.Contains(st.Reason, "authentication failed: 401") {
		t.Errorf("reason %q", st.Reason)
	}
	if f.metrics.authFailures.Load() != 1 {
		t.Errorf("auth failures %d", f.metrics.authFailures.Load())
	}
	evs := f.events.list()
	last := evs[len(evs)-1]
	if wait := last.RetryAt.Sub(last.At); wait < 8*time.Second || wait > 12*time.Second {
		t.Errorf("retry in %v, want RetryMin ±20 %%", wait)
	}
	if n := len(reg.requests()); n != 2 {
		t.Fatalf("%d REGISTERs before the backoff, want 2", n)
	}
	f.clock.Advance(13 * time.Second)
	reg.waitRequests(3)
}

// 503 with Retry-After: the retry waits as long as the registrar asked.
func TestServiceUnavailableRetryAfter(t *testing.T) {
	reg := newRegistrar(t, "secret")
	var refused atomic.Bool
	reg.configure(func(r *registrar) {
		r.override = func(req *sip.Request) *sip.Response {
			if refused.CompareAndSwap(false, true) {
				res := sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
				res.AppendHeader(sip.NewHeader("Retry-After", "120"))
				return res
			}
			return nil
		}
	})
	f := newFixture(t, upstream.Config{RetryMin: time.Second}, reg, upstream.Deps{})
	if err := f.client.Register(account(reg)); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, f.client, "acct-1", upstream.StateFailed)
	if st.Reason != "503 Service Unavailable" {
		t.Errorf("reason %q", st.Reason)
	}
	if next := f.clock.NextAt().Sub(f.clock.Now()); next != 120*time.Second {
		t.Fatalf("retry due in %v, want Retry-After's 120 s", next)
	}
	f.clock.Advance(120 * time.Second)
	waitState(t, f.client, "acct-1", upstream.StateRegistered)
}

// The registrar's domain has two SRV targets (a real DNS server): the first
// answers 503, the client moves on to the second at once.
func TestFailoverAcrossSRVTargets(t *testing.T) {
	down := newRegistrar(t, "secret")
	down.configure(func(r *registrar) {
		r.override = func(req *sip.Request) *sip.Response {
			return sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
		}
	})
	up := newRegistrar(t, "secret")
	portOf := func(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }
	resolver, _ := dnstest.Start(t,
		"--srv-host=_sip._udp.telco.test,reg-a.telco.test,"+portOf(down.addr)+",10,10",
		"--srv-host=_sip._udp.telco.test,reg-b.telco.test,"+portOf(up.addr)+",20,10",
		"--host-record=reg-a.telco.test,127.0.0.1",
		"--host-record=reg-b.telco.test,127.0.0.1",
	)
	f := newFixture(t, upstream.Config{}, up, upstream.Deps{Resolver: resolver})
	a := account(up)
	a.Registrar = "sip:telco.test"
	if err := f.client.Register(a); err != nil {
		t.Fatal(err)
	}
	waitState(t, f.client, "acct-1", upstream.StateRegistered)
	if len(down.requests()) != 1 {
		t.Errorf("first target got %d REGISTERs", len(down.requests()))
	}
	if len(up.requests()) != 2 {
		t.Errorf("second target got %d REGISTERs", len(up.requests()))
	}
}

// No answer at all: the transaction times out (Timer F) and the
// registration fails with "timeout".
func TestTimeout(t *testing.T) {
	reg := newRegistrar(t, "secret")
	f := newFixture(t, upstream.Config{}, reg, upstream.Deps{})
	a := account(reg)
	a.Registrar = "sip:127.0.0.1:9" // discard: nothing answers
	if err := f.client.Register(a); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, f.client, "acct-1", upstream.StateFailed)
	if st.Reason != "timeout" {
		t.Errorf("reason %q", st.Reason)
	}
}

// Un-register removes our binding with Expires: 0; "all" removes every
// binding of the address of record with Contact: *; Remove sends nothing.
func TestUnregisterAndRemove(t *testing.T) {
	reg := newRegistrar(t, "secret")
	f := newFixture(t, upstream.Config{}, reg, upstream.Deps{})
	register := func(id string) {
		t.Helper()
		a := account(reg)
		a.ID = id
		if err := f.client.Register(a); err != nil {
			t.Fatal(err)
		}
		waitState(t, f.client, id, upstream.StateRegistered)
	}
	ended := func(id string) (ev upstream.Event) {
		t.Helper()
		eventually(t, id+" ended", func() bool {
			for _, e := range f.events.list() {
				if e.ID == id && e.State == upstream.StateEnded {
					ev = e
					return true
				}
			}
			return false
		})
		return ev
	}

	register("one")
	n := len(reg.requests())
	if err := f.client.Unregister("one", false); err != nil {
		t.Fatal(err)
	}
	if e := ended("one"); e.Reason != "unregistered" {
		t.Errorf("reason %q", e.Reason)
	}
	last := reg.requests()[len(reg.requests())-1]
	if header(last, "Expires") != "0" || last.Contact() == nil || last.Contact().Address.User != number {
		t.Errorf("un-REGISTER: Expires %q Contact %v", header(last, "Expires"), last.Contact())
	}
	if len(reg.requests()) <= n {
		t.Fatal("nothing sent")
	}

	register("two")
	if err := f.client.Unregister("two", true); err != nil {
		t.Fatal(err)
	}
	ended("two")
	last = reg.requests()[len(reg.requests())-1]
	if header(last, "Contact") != "*" || header(last, "Expires") != "0" {
		t.Errorf("remove all: Contact %q Expires %q", header(last, "Contact"), header(last, "Expires"))
	}

	register("three")
	n = len(reg.requests())
	if err := f.client.Remove("three"); err != nil {
		t.Fatal(err)
	}
	if e := ended("three"); e.Reason != "removed" {
		t.Errorf("reason %q", e.Reason)
	}
	f.clock.Advance(2 * time.Hour)
	if len(reg.requests()) != n {
		t.Fatal("a removed registration sent something")
	}
	if _, ok := f.client.Status("three"); ok {
		t.Fatal("removed registration still held")
	}
}

// With "outbound" supported, the Contact carries the RFC 5626 instance
// (stable per account) and reg-id.
func TestOutboundContact(t *testing.T) {
	reg := newRegistrar(t, "secret")
	f := newFixture(t, upstream.Config{Supported: []string{"path", "outbound"}}, reg, upstream.Deps{})
	if err := f.client.Register(account(reg)); err != nil {
		t.Fatal(err)
	}
	waitState(t, f.client, "acct-1", upstream.StateRegistered)
	reqs := reg.requests()
	inst := ""
	for _, r := range reqs {
		c := r.Contact()
		got, _ := c.Params.Get("+sip.instance")
		regID, _ := c.Params.Get("reg-id")
		if !strings.HasPrefix(got, `"<urn:uuid:`) || regID != "1" || header(r, "Supported") != "path, outbound" {
			t.Fatalf("Contact %s, Supported %q", c.Value(), header(r, "Supported"))
		}
		if inst != "" && got != inst {
			t.Fatal("instance changed between REGISTERs")
		}
		inst = got
	}
}

// Credentials go only to the account's realm: a challenge for another
// realm fails the registration without answering it.
func TestChallengeForAnotherRealm(t *testing.T) {
	reg := newRegistrar(t, "secret")
	f := newFixture(t, upstream.Config{}, reg, upstream.Deps{})
	a := account(reg)
	a.Realm = "telco.example"
	if err := f.client.Register(a); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, f.client, "acct-1", upstream.StateFailed)
	if !strings.Contains(st.Reason, `realm "callpath.test"`) {
		t.Errorf("reason %q", st.Reason)
	}
	if n := len(reg.requests()); n != 1 {
		t.Fatalf("%d REGISTERs: credentials were sent to the wrong realm", n)
	}
}
