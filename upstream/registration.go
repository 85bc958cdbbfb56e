package upstream

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"callpath/sipstack"
)

// registration is one account's binding at the registrar. Its REGISTERs
// share a Call-ID and increasing CSeqs (RFC 3261 §10.2). It runs on
// callbacks: responses arrive on the transaction layer's goroutines, timers
// on the clock's; every request goes out from a timer goroutine, never from
// a read loop.
type registration struct {
	c      *Client
	callID string

	mu        sync.Mutex
	acct      Account
	registrar sip.Uri
	transport string
	state     State
	reason    string
	cseq      uint32
	expires   time.Duration // asked for; raised by 423
	bound     time.Time     // end of the binding last granted
	timer     Timer
	attempt   int // counts requests sent; responses to an older one are ignored
	ended     bool

	// the current try: what it is for, and where it goes
	unregistering bool
	removeAll     bool
	targets       []string // resolved next hops, in RFC 3263 order
	target        int
	intervalTries int // 423s answered in this try

	// digest authentication
	challenge  *digest.Challenge
	proxyAuth  bool // the challenge came in 407 (Proxy-Authorization)
	nc         int
	freshCreds bool // the request in flight answers a challenge received in this try
	failures   int  // failed tries in a row, for the backoff
	retryAfter time.Duration
}

func newRegistration(c *Client, a Account, registrar sip.Uri) *registration {
	return &registration{c: c, acct: a, registrar: registrar, callID: sip.GenerateTagN(24) + "@callpath"}
}

// start (re)starts the registration with the account's current data.
func (r *registration) start(a Account, registrar sip.Uri) {
	r.mu.Lock()
	r.acct, r.registrar = a, registrar
	r.transport = transportOf(registrar)
	r.expires = a.Expires
	if r.expires <= 0 {
		r.expires = r.c.cfg.Expires
	}
	r.unregistering, r.removeAll = false, false
	r.targets = nil
	state := StateRegistering
	if r.state == StateRegistered || r.state == StateRefreshing {
		state = StateRefreshing
	}
	r.setState(state, "")
	r.mu.Unlock()
	r.schedule(0, r.try)
}

func transportOf(u sip.Uri) string {
	if tp := u.UriParams.GetOr("transport", ""); tp != "" {
		return strings.ToUpper(tp)
	}
	if u.Scheme == "sips" {
		return "TLS"
	}
	return "UDP"
}

// scheduleLocked runs f after d on the clock, replacing any pending timer.
// Called with r.mu held.
func (r *registration) scheduleLocked(d time.Duration, f func()) {
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timer = r.c.clock.AfterFunc(d, f)
}

// schedule is scheduleLocked for callers without the lock.
func (r *registration) schedule(d time.Duration, f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	r.scheduleLocked(d, f)
}

// try starts a new try: resolve the registrar, send the REGISTER. Runs on
// a timer goroutine.
func (r *registration) try() {
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		return
	}
	r.target, r.intervalTries, r.freshCreds, r.retryAfter = 0, 0, false, 0
	needTargets := len(r.targets) == 0
	u := r.registrar
	tp := r.transport
	r.mu.Unlock()
	if needTargets {
		targets, err := r.resolve(u, tp)
		r.mu.Lock()
		if err != nil {
			r.failLocked("DNS: " + err.Error())
			r.mu.Unlock()
			return
		}
		r.targets = targets
		r.mu.Unlock()
	}
	r.send()
}

// resolve finds the registrar's next hops (RFC 3263: SRV when the URI has
// no port), so that a registrar that fails is replaced by the next.
func (r *registration) resolve(u sip.Uri, transport string) ([]string, error) {
	ctx, cancel := context.WithTimeout(r.c.ctx, 10*time.Second)
	defer cancel()
	scheme, proto := "sip", "udp"
	switch transport {
	case "TCP":
		proto = "tcp"
	case "TLS":
		scheme, proto = "sips", "tcp"
	}
	addrs, err := sipstack.ResolveSIP(ctx, r.c.resolver, scheme, proto, u.Host, u.Port)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out, nil
}

// send builds and sends the REGISTER of the current try. Runs on a timer
// goroutine.
func (r *registration) send() {
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		return
	}
	r.attempt++
	attempt := r.attempt
	req := r.buildLocked()
	r.mu.Unlock()

	cb := sipstack.Callbacks{
		Response: func(res *sip.Response) { r.onResponse(attempt, res) },
		Failure:  func(err error) { r.onFailure(attempt, err) },
	}
	if _, err := r.c.ua.Request(r.c.ctx, req, cb); err != nil {
		r.onFailure(attempt, err)
	}
}

// buildLocked makes the REGISTER. Called with r.mu held.
func (r *registration) buildLocked() *sip.Request {
	a := r.acct
	req := sip.NewRequest(sip.REGISTER, *r.registrar.Clone())
	aor := sip.Uri{Scheme: "sip", User: a.Number, Host: a.Domain}
	if r.registrar.Scheme == "sips" {
		aor.Scheme = "sips"
	}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	callID := sip.CallIDHeader(r.callID)
	req.AppendHeader(&callID)
	r.cseq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: r.cseq, MethodName: sip.REGISTER})
	mf := sip.MaxForwardsHeader(uint32(r.c.cfg.MaxForwards))
	req.AppendHeader(&mf)

	expires := r.expires
	switch {
	case r.removeAll:
		req.AppendHeader(sip.NewHeader("Contact", "*"))
		expires = 0
	default:
		req.AppendHeader(r.contactLocked())
		if r.unregistering {
			expires = 0
		}
	}
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	if len(r.c.cfg.Supported) > 0 {
		req.AppendHeader(sip.NewHeader("Supported", strings.Join(r.c.cfg.Supported, ", ")))
	}
	if r.c.cfg.UserAgent != "" {
		req.AppendHeader(sip.NewHeader("User-Agent", r.c.cfg.UserAgent))
	}
	if r.challenge != nil {
		if h, err := r.credentialsLocked(req); err == nil {
			req.AppendHeader(h)
		}
	}
	req.SetBody(nil)
	req.SetTransport(r.transport)
	if r.target < len(r.targets) {
		req.SetDestination(r.targets[r.target])
	}
	return req
}

// contactLocked is our Contact for this account: the number as user part,
// so that a call the registrar sends to it says which number it is for.
func (r *registration) contactLocked() *sip.ContactHeader {
	u := r.c.ua.Contact(r.transport)
	u.User = r.acct.Number
	ch := &sip.ContactHeader{Address: u, Params: sip.NewParams()}
	if r.supports("outbound") {
		// RFC 5626 §4.2: one instance per account, one flow.
		ch.Params.Add("+sip.instance", `"<urn:uuid:`+instanceUUID(r.acct.ID)+`>"`)
		ch.Params.Add("reg-id", "1")
	}
	return ch
}

func (r *registration) supports(tag string) bool {
	for _, t := range r.c.cfg.Supported {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

// credentialsLocked answers the stored challenge for req (RFC 3261 §22.4;
// RFC 8760 for SHA-256). The password goes into the hash only.
func (r *registration) credentialsLocked(req *sip.Request) (sip.Header, error) {
	r.nc++
	cred, err := digest.Digest(r.challenge, digest.Options{
		Method: string(req.Method), URI: req.Recipient.String(),
		Username: r.acct.username(), Password: r.acct.Password, Count: r.nc,
	})
	if err != nil {
		return nil, err
	}
	name := "Authorization"
	if r.proxyAuth {
		name = "Proxy-Authorization"
	}
	return sip.NewHeader(name, cred.String()), nil
}

// onResponse handles a response to the REGISTER sent as attempt.
func (r *registration) onResponse(attempt int, res *sip.Response) {
	code := res.StatusCode
	if code < 200 {
		return
	}
	r.c.metrics.Response(code)
	r.mu.Lock()
	defer r.mu.Unlock()
	if attempt != r.attempt || r.ended {
		return
	}
	switch {
	case code < 300:
		r.acceptedLocked(res)
	case code == 401 || code == 407:
		r.challengedLocked(res)
	case code == 423:
		r.tooBriefLocked(res)
	case code == 503 || code >= 500 || code == 408 || code == 480:
		if code == 503 {
			r.retryAfter = retryAfter(res)
		}
		r.nextTargetLocked(strconv.Itoa(code) + " " + res.Reason)
	default:
		r.failLocked(strconv.Itoa(code) + " " + res.Reason)
	}
}

// onFailure handles a REGISTER that got no final response.
func (r *registration) onFailure(attempt int, err error) {
	timeout := errors.Is(err, sip.ErrTransactionTimeout)
	r.c.metrics.Failure(timeout)
	r.mu.Lock()
	defer r.mu.Unlock()
	if attempt != r.attempt || r.ended {
		return
	}
	why := "transport error: " + err.Error()
	if timeout {
		why = "timeout"
	}
	r.nextTargetLocked(why)
}

// acceptedLocked takes a 2xx: the binding the registrar granted.
func (r *registration) acceptedLocked(res *sip.Response) {
	r.failures, r.retryAfter = 0, 0
	if r.unregistering {
		r.endLocked("unregistered")
		return
	}
	granted := r.grantedLocked(res)
	if granted <= 0 {
		r.failLocked("the registrar kept no binding for our Contact")
		return
	}
	now := r.c.clock.Now()
	r.bound = now.Add(granted)
	r.setState(StateRegistered, "")
	r.scheduleLocked(r.c.refreshDelay(granted), r.refresh)
}

// grantedLocked is the binding's lifetime. Called with r.mu held.
func (r *registration) grantedLocked(res *sip.Response) time.Duration {
	return granted(res, r.acct.Number, r.c.ua.Contact(r.transport), r.expires)
}

// granted is the lifetime a registrar's 2xx gives our binding (number at
// ours): the expires parameter of our Contact, else the Expires header,
// else what we asked for (RFC 3261 §10.2.4). Unreadable values count as
// absent.
func granted(res *sip.Response, number string, ours sip.Uri, asked time.Duration) time.Duration {
	for _, h := range res.GetHeaders("Contact") {
		ch, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		u := ch.Address
		if u.User != number || !strings.EqualFold(u.Host, ours.Host) || portOr(u) != portOr(ours) {
			continue
		}
		if v, ok := ch.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
				return time.Duration(n) * time.Second
			}
		}
		break
	}
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n >= 0 {
			return time.Duration(n) * time.Second
		}
	}
	return asked
}

func portOr(u sip.Uri) int {
	if u.Port != 0 {
		return u.Port
	}
	if u.Scheme == "sips" {
		return sipstack.DefaultSIPSPort
	}
	return sipstack.DefaultSIPPort
}

// challengedLocked answers 401/407 with credentials, once per challenge:
// a second challenge to credentials made from a fresh one means they are
// wrong, unless the registrar says the nonce was merely stale.
func (r *registration) challengedLocked(res *sip.Response) {
	name := "WWW-Authenticate"
	if res.StatusCode == 407 {
		name = "Proxy-Authenticate"
	}
	h := res.GetHeader(name)
	if h == nil {
		r.failLocked(fmt.Sprintf("%d without %s", res.StatusCode, name))
		return
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil || !digest.CanDigest(chal) {
		r.failLocked(fmt.Sprintf("unsupported challenge (%s)", strings.SplitN(h.Value(), ",", 2)[0]))
		return
	}
	if r.acct.Realm != "" && chal.Realm != r.acct.Realm {
		r.failLocked(fmt.Sprintf("challenged for realm %q, the account is for %q", chal.Realm, r.acct.Realm))
		return
	}
	if r.freshCreds && !chal.Stale {
		r.c.metrics.AuthFailure()
		r.challenge = nil
		r.failLocked(fmt.Sprintf("authentication failed: %d %s", res.StatusCode, res.Reason))
		return
	}
	r.challenge, r.proxyAuth, r.nc, r.freshCreds = chal, res.StatusCode == 407, 0, true
	r.scheduleLocked(0, r.send)
}

// tooBriefLocked answers 423 by asking for the registrar's Min-Expires
// (RFC 3261 §10.3 step 7), a few times at most.
func (r *registration) tooBriefLocked(res *sip.Response) {
	h := res.GetHeader("Min-Expires")
	n := 0
	if h != nil {
		n, _ = strconv.Atoi(strings.TrimSpace(h.Value()))
	}
	minimum := time.Duration(n) * time.Second
	if minimum <= r.expires || r.intervalTries >= 3 {
		r.failLocked("423 Interval Too Brief")
		return
	}
	r.intervalTries++
	r.expires = minimum
	r.scheduleLocked(0, r.send)
}

// nextTargetLocked moves to the registrar's next address after a timeout
// or server error (RFC 3263 §4.3), or fails the try when none is left.
func (r *registration) nextTargetLocked(why string) {
	if r.target+1 < len(r.targets) {
		r.target++
		r.freshCreds = false
		r.scheduleLocked(0, r.send)
		return
	}
	r.failLocked(why)
}

// failLocked ends a try: an unregistration ends anyway; otherwise the next
// try is scheduled after the backoff (or the registrar's Retry-After).
func (r *registration) failLocked(why string) {
	if r.unregistering {
		r.endLocked("unregistered (" + why + ")")
		return
	}
	r.failures++
	delay := max(r.c.backoff(r.failures), r.retryAfter)
	now := r.c.clock.Now()
	r.targets = nil // resolve again: DNS may have moved on
	r.reason = why
	r.state = StateFailed
	r.c.log.WithFields(map[string]any{"registration": r.acct.ID, "reason": why, "retry_in": delay}).Info("upstream registration failed")
	r.c.publish(Event{ID: r.acct.ID, Number: r.acct.Number, State: StateFailed, Reason: why,
		RetryAt: now.Add(delay), BindingLost: !r.bound.IsZero() && !now.Before(r.bound)})
	r.scheduleLocked(delay, r.refresh)
}

// refresh renews the binding (or retries after a failure).
func (r *registration) refresh() {
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		return
	}
	if r.state == StateRegistered {
		r.setState(StateRefreshing, "")
	}
	r.mu.Unlock()
	r.try()
}

// unregister removes our binding (all: every binding of the AOR).
func (r *registration) unregister(all bool) {
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		return
	}
	r.unregistering, r.removeAll = true, all
	r.setState(StateUnregistering, "")
	r.scheduleLocked(0, r.try)
	r.mu.Unlock()
}

// end forgets the registration without sending anything.
func (r *registration) end(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endLocked(why)
}

func (r *registration) endLocked(why string) {
	if r.ended {
		return
	}
	r.ended = true
	r.attempt++ // responses still to come are ignored
	if r.timer != nil {
		r.timer.Stop()
	}
	r.setState(StateEnded, why)
	r.c.forget(r)
}

// stop ends without an event (Client.Close).
func (r *registration) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = true
	if r.timer != nil {
		r.timer.Stop()
	}
}

// setState records and publishes a state change. Called with r.mu held.
func (r *registration) setState(s State, why string) {
	r.state, r.reason = s, why
	e := Event{ID: r.acct.ID, Number: r.acct.Number, State: s, Reason: why}
	if s == StateRegistered {
		e.Expires = r.bound
	}
	r.c.publish(e)
}

func (r *registration) status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Status{State: r.state, Expires: r.bound, Reason: r.reason}
}

// retryAfter reads a 503's Retry-After (seconds, comment ignored).
func retryAfter(res *sip.Response) time.Duration {
	h := res.GetHeader("Retry-After")
	if h == nil {
		return 0
	}
	v := strings.TrimSpace(h.Value())
	if i := strings.IndexAny(v, " ;("); i >= 0 {
		v = v[:i]
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// instanceUUID derives a stable RFC 5626 instance ID from the account ID
// (UUID layout, version 5 style bits over an FNV-128a hash).
func instanceUUID(id string) string {
	f := fnv.New128a()
	_, _ = f.Write([]byte(id))
	h := f.Sum(nil)
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
