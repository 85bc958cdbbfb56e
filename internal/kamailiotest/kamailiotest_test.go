package kamailiotest

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

const user = "+4790000001"

func TestMain(m *testing.M) {
	// sipgo warns about its own connection reference counts when a user
	// agent closes; keep errors only.
	sip.SetDefaultLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	os.Exit(m.Run())
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// uac is a sipgo user agent registering with the registrar.
type uac struct {
	ua  *sipgo.UserAgent
	cl  *sipgo.Client
	reg *Registrar
}

func newUAC(t *testing.T, reg *Registrar) *uac {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("kamailiotest"), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	cl, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	return &uac{ua: ua, cl: cl, reg: reg}
}

// registerRequest builds a REGISTER for user with the given Contact header
// values and Expires header (none if expires < 0).
func (u *uac) registerRequest(username, transport string, expires int, contacts ...string) *sip.Request {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: u.reg.Port()})
	aor := sip.Uri{Scheme: "sip", User: username, Host: "127.0.0.1"}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	for _, c := range contacts {
		req.AppendHeader(sip.NewHeader("Contact", c))
	}
	if expires >= 0 {
		req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	}
	req.AppendHeader(sip.NewHeader("User-Agent", "kamailiotest-uac"))
	req.SetTransport(transport)
	return req
}

// register sends req, answers a 401 with sipgo's digest (DoDigestAuth) and
// returns the challenge (nil if none) and the final response.
func (u *uac) register(t *testing.T, ctx context.Context, req *sip.Request, username, password string) (challenge, final *sip.Response) {
	t.Helper()
	res, err := u.cl.Do(ctx, req)
	if err != nil {
		t.Fatalf("REGISTER: %v", err)
	}
	if res.StatusCode != sip.StatusUnauthorized {
		return nil, res
	}
	final, err = u.cl.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: username, Password: password})
	if err != nil {
		t.Fatalf("REGISTER with credentials: %v", err)
	}
	return res, final
}

// resendWithNC sends req again (next CSeq, new Via) with MD5 credentials
// for chal at nonce count nc.
func (u *uac) resendWithNC(t *testing.T, ctx context.Context, req *sip.Request, chal map[string]string, nc int) *sip.Response {
	t.Helper()
	req.RemoveHeader("Authorization")
	req.AppendHeader(sip.NewHeader("Authorization",
		digestResponseNC(md5.New, "MD5", chal, nc, "REGISTER", req.Recipient.Addr(), user, Password(user))))
	req.CSeq().SeqNo++
	req.RemoveHeader("Via")
	res, err := u.cl.Do(ctx, req, sipgo.ClientRequestAddVia)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// contactExpires maps the contact URIs of a 200 to their expires parameter.
func contactExpires(t *testing.T, res *sip.Response) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			t.Fatalf("Contact header %T %q", h, h.Value())
		}
		v, _ := c.Params.Get("expires")
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("Contact %q: expires %q", c.Value(), v)
		}
		out[c.Address.String()] = n
	}
	return out
}

// headersOf is the header section of a message, for logs.
func headersOf(m interface{ String() string }) string {
	h, _, _ := strings.Cut(m.String(), "\r\n\r\n")
	_, h, _ = strings.Cut(h, "\r\n")
	return h
}

func wantStatus(t *testing.T, res *sip.Response, code int) {
	t.Helper()
	if res.StatusCode != code {
		t.Fatalf("got %d %s, want %d:\n%s", res.StatusCode, res.Reason, code, res.String())
	}
}

// within checks a remaining validity reported right after granting grant s.
func within(t *testing.T, c Contact, grant int) {
	t.Helper()
	g := time.Duration(grant) * time.Second
	if c.Expires > g || c.Expires < g-3*time.Second || c.Expired || c.Permanent {
		t.Errorf("contact %s: Expires %v (expired %v), want about %v", c.URI, c.Expires, c.Expired, g)
	}
}

// waitFor polls cond every 10 ms until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

func TestStartKamcmdAndEmptyTable(t *testing.T) {
	reg := Start(t, Options{})
	ctx := testCtx(t, 20*time.Second)
	if !strings.HasPrefix(reg.Addr(), "127.0.0.1:") || reg.URI() != "sip:"+reg.Addr() {
		t.Fatalf("Addr %q URI %q", reg.Addr(), reg.URI())
	}
	out, err := reg.Kamcmd(ctx, "ul.dump")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Domain: location") {
		t.Fatalf("kamcmd ul.dump:\n%s", out)
	}
	n, err := reg.RegisteredUsers(ctx)
	if err != nil || n != 0 {
		t.Fatalf("RegisteredUsers = %d, %v", n, err)
	}
	cs, err := reg.Contacts(ctx, user)
	if err != nil || len(cs) != 0 {
		t.Fatalf("Contacts = %v, %v", cs, err)
	}
	if _, err := reg.RPC(ctx, "no.such.command"); err == nil {
		t.Fatal("unknown RPC command: no error")
	}
	// Keep-alive OPTIONS to the registrar itself.
	u := newUAC(t, reg)
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: reg.Port()})
	res, err := u.cl.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, res, 200)
}

func TestRegisterMD5(t *testing.T) {
	reg := Start(t, Options{})
	for _, tr := range []string{"UDP", "TCP"} {
		t.Run(tr, func(t *testing.T) {
			ctx := testCtx(t, 20*time.Second)
			u := newUAC(t, reg)
			contact := "sip:" + user + "@127.0.0.1:5099;transport=" + strings.ToLower(tr)
			chal, res := u.register(t, ctx, u.registerRequest(user, tr, 60, "<"+contact+">"), user, Password(user))
			if chal == nil {
				t.Fatal("REGISTER was not challenged")
			}
			www := chal.GetHeader("WWW-Authenticate").Value()
			for _, want := range []string{`realm="callpath.test"`, "algorithm=MD5", `qop="auth"`} {
				if !strings.Contains(www, want) {
					t.Errorf("challenge %q lacks %s", www, want)
				}
			}
			wantStatus(t, res, 200)
			if got := contactExpires(t, res)[contact]; got != 60 {
				t.Errorf("200 grants %d s to %s, want 60:\n%s", got, contact, res)
			}
			cs, err := reg.Contacts(ctx, reg.AOR(user))
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != 1 || cs[0].URI != contact || cs[0].AOR != user {
				t.Fatalf("Contacts = %+v", cs)
			}
			within(t, cs[0], 60)
			if cs[0].UserAgent != "kamailiotest-uac" || cs[0].Received != "" || cs[0].LastModified.IsZero() ||
				!strings.HasPrefix(cs[0].Socket, strings.ToLower(tr)+":127.0.0.1:") {
				t.Errorf("contact %+v", cs[0])
			}
			out, err := reg.Kamcmd(ctx, "ul.lookup", "location", "s:"+user)
			if err != nil || !strings.Contains(out, "Address: "+contact) {
				t.Errorf("kamcmd ul.lookup: %v\n%s", err, out)
			}
			// Clean up for the other transport: Contact * removes it.
			_, res = u.register(t, ctx, u.registerRequest(user, tr, 0, "*"), user, Password(user))
			wantStatus(t, res, 200)
		})
	}
}

func TestRegisterSHA256(t *testing.T) {
	reg := Start(t, Options{Algorithm: "SHA-256", Realm: "telco.example"})
	ctx := testCtx(t, 20*time.Second)
	u := newUAC(t, reg)
	contact := "sip:" + user + "@127.0.0.1:5099"
	req := u.registerRequest(user, "UDP", 60, "<"+contact+">")
	chal, res := u.register(t, ctx, req, user, Password(user))
	if chal == nil {
		t.Fatal("REGISTER was not challenged")
	}
	www := chal.GetHeader("WWW-Authenticate").Value()
	if !strings.Contains(www, "algorithm=SHA-256") || !strings.Contains(www, `realm="telco.example"`) {
		t.Fatalf("challenge %q: want algorithm=SHA-256 and the realm", www)
	}
	authz := req.GetHeader("Authorization").Value()
	if !strings.Contains(authz, "algorithm=SHA-256") {
		t.Fatalf("sipgo answered %q", authz)
	}
	wantStatus(t, res, 200)
	t.Logf("challenge: WWW-Authenticate: %s", www)
	t.Logf("accepted: Authorization: %s", authz)
	cs, err := reg.Contacts(ctx, user)
	if err != nil || len(cs) != 1 || cs[0].URI != contact {
		t.Fatalf("Contacts = %+v, %v", cs, err)
	}

	// Kamailio really checks a SHA-256 response: the same credentials hashed
	// with MD5 are refused, hashed with SHA-256 (computed here) accepted.
	for _, tc := range []struct {
		alg  string
		h    func() hash.Hash
		want int
	}{
		{"MD5", md5.New, 401},     // MD5 response, named MD5
		{"SHA-256", md5.New, 401}, // MD5 response, named SHA-256
		{"SHA-256", sha256.New, 200},
	} {
		req := u.registerRequest(user, "UDP", 60, "<"+contact+">")
		res, err := u.cl.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, res, 401)
		params := parseChallenge(res.GetHeader("WWW-Authenticate").Value())
		req.AppendHeader(sip.NewHeader("Authorization",
			digestResponse(tc.h, tc.alg, params, "REGISTER", req.Recipient.Addr(), user, Password(user))))
		req.CSeq().SeqNo++
		req.RemoveHeader("Via")
		res, err = u.cl.Do(ctx, req, sipgo.ClientRequestAddVia)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != tc.want {
			t.Errorf("response named %s, %d hex digits: %d, want %d", tc.alg, 2*tc.h().Size(), res.StatusCode, tc.want)
		}
	}
}

// parseChallenge reads the parameters of a Digest challenge (enough for
// Kamailio's: no commas inside quoted values).
func parseChallenge(v string) map[string]string {
	v = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), "Digest"))
	out := map[string]string{}
	for _, p := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		out[strings.ToLower(k)] = strings.Trim(val, `"`)
	}
	return out
}

// digestResponse is an Authorization value per RFC 7616 with qop=auth and
// nc=1.
func digestResponse(newHash func() hash.Hash, alg string, chal map[string]string, method, uri, username, password string) string {
	return digestResponseNC(newHash, alg, chal, 1, method, uri, username, password)
}

// digestResponseNC is digestResponse with nonce count nc.
func digestResponseNC(newHash func() hash.Hash, alg string, chal map[string]string, ncount int, method, uri, username, password string) string {
	h := func(s string) string {
		x := newHash()
		x.Write([]byte(s))
		return hex.EncodeToString(x.Sum(nil))
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	cnonce, nc := hex.EncodeToString(b), fmt.Sprintf("%08x", ncount)
	ha1 := h(username + ":" + chal["realm"] + ":" + password)
	ha2 := h(method + ":" + uri)
	resp := h(strings.Join([]string{ha1, chal["nonce"], nc, cnonce, "auth", ha2}, ":"))
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, cnonce="%s", qop=auth, nc=%s`,
		username, chal["realm"], chal["nonce"], uri, resp, alg, cnonce, nc)
}

func TestWrongPasswordIsChallengedAgain(t *testing.T) {
	reg := Start(t, Options{})
	ctx := testCtx(t, 20*time.Second)
	u := newUAC(t, reg)
	chal, res := u.register(t, ctx, u.registerRequest(user, "UDP", 60, "<sip:"+user+"@127.0.0.1:5099>"), user, "wrong")
	if chal == nil {
		t.Fatal("REGISTER was not challenged")
	}
	wantStatus(t, res, 401)
	first := parseChallenge(chal.GetHeader("WWW-Authenticate").Value())["nonce"]
	again := parseChallenge(res.GetHeader("WWW-Authenticate").Value())["nonce"]
	if first == "" || again == "" || first == again {
		t.Errorf("nonces %q then %q: want a new one", first, again)
	}
	// Another user's password is wrong too.
	_, res = u.register(t, ctx, u.registerRequest(user, "UDP", 60, "<sip:"+user+"@127.0.0.1:5099>"), user, Password("+4790000002"))
	wantStatus(t, res, 401)
	// The digest username must be the To user.
	_, res = u.register(t, ctx, u.registerRequest(user, "UDP", 60, "<sip:"+user+"@127.0.0.1:5099>"), "+4790000002", Password("+4790000002"))
	wantStatus(t, res, 401)
	if cs, err := reg.Contacts(ctx, user); err != nil || len(cs) != 0 {
		t.Fatalf("Contacts = %+v, %v", cs, err)
	}
}

func TestNonceReuseNeedsGrowingCount(t *testing.T) {
	reg := Start(t, Options{})
	ctx := testCtx(t, 20*time.Second)
	u := newUAC(t, reg)
	req := u.registerRequest(user, "UDP", 60, "<sip:"+user+"@127.0.0.1:5099>")
	res, err := u.cl.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, res, 401)
	chal := parseChallenge(res.GetHeader("WWW-Authenticate").Value())
	send := func(nc int) *sip.Response { t.Helper(); return u.resendWithNC(t, ctx, req, chal, nc) }
	wantStatus(t, send(1), 200)
	wantStatus(t, send(2), 200) // the nonce is reused with the next count
	res = send(2)               // the same count again: a replay
	wantStatus(t, res, 401)
	if www := res.GetHeader("WWW-Authenticate").Value(); !strings.Contains(www, "stale=true") {
		t.Errorf("replayed nc: challenge %q without stale=true", www)
	}
}

func TestStaleNonce(t *testing.T) {
	reg := Start(t, Options{NonceExpire: 1})
	ctx := testCtx(t, 20*time.Second)
	u := newUAC(t, reg)
	req := u.registerRequest(user, "UDP", 60, "<sip:"+user+"@127.0.0.1:5099>")
	res, err := u.cl.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, res, 401)
	issued := time.Now()
	chal := parseChallenge(res.GetHeader("WWW-Authenticate").Value())
	send := func(nc int) *sip.Response { t.Helper(); return u.resendWithNC(t, ctx, req, chal, nc) }
	wantStale := func(res *sip.Response, why string) {
		t.Helper()
		wantStatus(t, res, 401)
		if www := res.GetHeader("WWW-Authenticate").Value(); !strings.Contains(www, "stale=true") {
			t.Errorf("%s: challenge %q without stale=true", why, www)
		}
	}
	wantStatus(t, send(1), 200)
	wantStale(send(256), "nc 256") // Kamailio counts up to 255 per nonce
	wantStatus(t, send(2), 200)
	// Nonces live NonceExpire (1 s) past the second they were made in.
	waitFor(t, ctx, "the nonce to expire", func() bool { return time.Since(issued) > 2100*time.Millisecond })
	wantStale(send(3), "expired nonce")
	// pv_auth_check said "nonce expired" (-4), not "reused" (-6).
	waitFor(t, ctx, "the challenge to be logged", func() bool { return strings.Contains(reg.Log(), "auth result -4,") })
}

func TestRetransmissionGetsTheSameAnswer(t *testing.T) {
	reg := Start(t, Options{})
	ctx := testCtx(t, 20*time.Second)
	conn, err := net.Dial("udp", reg.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	roundTrip := func(msg string) *sip.Response {
		t.Helper()
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		deadline, _ := ctx.Deadline()
		_ = conn.SetReadDeadline(deadline)
		buf := make([]byte, 65535)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			m, err := sip.ParseMessage(buf[:n])
			if err != nil {
				t.Fatal(err)
			}
			if res, ok := m.(*sip.Response); ok && !res.IsProvisional() {
				return res
			}
		}
	}
	build := func(cseq int, branch, authz string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "REGISTER sip:%s SIP/2.0\r\n", reg.Addr())
		fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\r\n", local, branch)
		fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:%s@127.0.0.1>;tag=f1\r\nTo: <sip:%s@127.0.0.1>\r\n", user, user)
		fmt.Fprintf(&b, "Call-ID: retrans-1\r\nCSeq: %d REGISTER\r\nContact: <sip:%s@%s>\r\nExpires: 60\r\n", cseq, user, local)
		if authz != "" {
			fmt.Fprintf(&b, "Authorization: %s\r\n", authz)
		}
		b.WriteString("Content-Length: 0\r\n\r\n")
		return b.String()
	}
	res := roundTrip(build(1, "a1", ""))
	wantStatus(t, res, 401)
	chal := parseChallenge(res.GetHeader("WWW-Authenticate").Value())
	msg := build(2, "a2", digestResponse(md5.New, "MD5", chal, "REGISTER", "sip:"+reg.Addr(), user, Password(user)))
	first := roundTrip(msg)
	wantStatus(t, first, 200)
	again := roundTrip(msg) // a retransmission: same branch, same nc
	wantStatus(t, again, 200)
	if first.To().Params.GetOr("tag", "") != again.To().Params.GetOr("tag", "x") {
		t.Errorf("retransmission answered with another To tag: %q, %q", first.To().Value(), again.To().Value())
	}
	// tm answered it: the script saved once. (The log line follows the
	// reply, so wait for it.)
	saves := func() int { return strings.Count(reg.Log(), "REGISTER "+user+": saved") }
	waitFor(t, ctx, "the save to be logged", func() bool { return saves() > 0 })
	if n := saves(); n != 1 {
		t.Errorf("%d saves logged, want 1", n)
	}
}

func TestExpiresBelowMinimumIs423(t *testing.T) {
	reg := Start(t, Options{MinExpires: 40})
	ctx := testCtx(t, 20*time.Second)
	u := newUAC(t, reg)
	_, res := u.register(t, ctx, u.registerRequest(user, "UDP", 10, "<sip:"+user+"@127.0.0.1:5099>"), user, Password(user))
	wantStatus(t, res, 423)
	if h := res.GetHeader("Min-Expires"); h == nil || strings.TrimSpace(h.Value()) != "40" {
		t.Fatalf("423 without Min-Expires: 40:\n%s", res)
	}
	t.Logf("Expires 10:\n%s", res.StartLine()+"\r\n"+headersOf(res))
	// The expires parameter of a contact counts the same.
	_, res = u.register(t, ctx, u.registerRequest(user, "UDP", -1, "<sip:"+user+"@127.0.0.1:5099>;expires=5"), user, Password(user))
	wantStatus(t, res, 423)
	// The minimum itself is fine.
	_, res = u.register(t, ctx, u.registerRequest(user, "UDP", 40, "<sip:"+user+"@127.0.0.1:5099>"), user, Password(user))
	wantStatus(t, res, 200)
}

func TestExpiresAboveMaximumIsShortened(t *testing.T) {
	reg := Start(t, Options{MaxExpires: 120})
	ctx := testCtx(t, 20*time.Second)
	u := newUAC(t, reg)
	contact := "sip:" + user + "@127.0.0.1:5099"
	_, res := u.register(t, ctx, u.registerRequest(user, "UDP", 3600, "<"+contact+">"), user, Password(user))
	wantStatus(t, res, 200)
	if got := contactExpires(t, res)[contact]; got != 120 {
		t.Errorf("200 grants %d s, want 120:\n%s", got, res)
	}
	t.Logf("Expires 3600:\n%s", res.StartLine()+"\r\n"+headersOf(res))
	// No Expires at all: the default is the maximum.
	contact2 := "sip:" + user + "@127.0.0.1:5098"
	_, res = u.register(t, ctx, u.registerRequest(user, "UDP", -1, "<"+contact2+">"), user, Password(user))
	wantStatus(t, res, 200)
	if got := contactExpires(t, res); got[contact2] != 120 || len(got) != 2 {
		t.Errorf("200 grants %v, want both contacts with about 120 s:\n%s", got, res)
	}
	cs, err := reg.Contacts(ctx, user)
	if err != nil || len(cs) != 2 {
		t.Fatalf("Contacts = %+v, %v", cs, err)
	}
	for _, c := range cs {
		within(t, c, 120)
	}
}

func TestRefreshUpdatesTheContact(t *testing.T) {
	reg := Start(t, Options{})
	ctx := testCtx(t, 20*time.Second)
	u := newUAC(t, reg)
	contact := "sip:" + user + "@127.0.0.1:5099"
	req := u.registerRequest(user, "UDP", 60, "<"+contact+">")
	_, res := u.register(t, ctx, req, user, Password(user))
	wantStatus(t, res, 200)

	// A refresh: same Call-ID, next CSeq, new Expires.
	req.RemoveHeader("Authorization")
	req.RemoveHeader("Via")
	req.RemoveHeader("Expires")
	req.AppendHeader(sip.NewHeader("Expires", "90"))
	req.CSeq().SeqNo++
	_, res = u.register(t, ctx, req, user, Password(user))
	wantStatus(t, res, 200)
	cs, err := reg.Contacts(ctx, user)
	if err != nil || len(cs) != 1 {
		t.Fatalf("Contacts after refresh = %+v, %v", cs, err)
	}
	within(t, cs[0], 90)

	// Another Call-ID (a restarted client) with the same Contact URI
	// replaces it too: usrloc matches contacts by URI.
	_, res = u.register(t, ctx, u.registerRequest(user, "UDP", 120, "<"+contact+">"), user, Password(user))
	wantStatus(t, res, 200)
	cs, err = reg.Contacts(ctx, user)
	if err != nil || len(cs) != 1 {
		t.Fatalf("Contacts after a new Call-ID = %+v, %v", cs, err)
	}
	within(t, cs[0], 120)
}

func TestUnregister(t *testing.T) {
	reg := Start(t, Options{})
	ctx := testCtx(t, 20*time.Second)
	u := newUAC(t, reg)
	c1 := "sip:" + user + "@127.0.0.1:5097"
	c2 := "sip:" + user + "@127.0.0.1:5098"
	for _, c := range []string{c1, c2} {
		_, res := u.register(t, ctx, u.registerRequest(user, "UDP", 300, "<"+c+">"), user, Password(user))
		wantStatus(t, res, 200)
	}
	if cs, err := reg.Contacts(ctx, user); err != nil || len(cs) != 2 {
		t.Fatalf("Contacts = %+v, %v", cs, err)
	}

	// Expires 0 removes one contact; the 200 lists the other.
	_, res := u.register(t, ctx, u.registerRequest(user, "UDP", 0, "<"+c1+">"), user, Password(user))
	wantStatus(t, res, 200)
	if got := contactExpires(t, res); len(got) != 1 || got[c2] == 0 {
		t.Errorf("200 after removing %s lists %v", c1, got)
	}
	cs, err := reg.Contacts(ctx, user)
	if err != nil || len(cs) != 1 || cs[0].URI != c2 {
		t.Fatalf("Contacts = %+v, %v", cs, err)
	}

	// Contact: * with Expires: 0 removes all (two again).
	_, res = u.register(t, ctx, u.registerRequest(user, "UDP", 300, "<"+c1+">"), user, Password(user))
	wantStatus(t, res, 200)
	if n, err := reg.ContactCount(ctx); err != nil || n != 2 {
		t.Fatalf("ContactCount = %d, %v", n, err)
	}
	_, res = u.register(t, ctx, u.registerRequest(user, "UDP", 0, "*"), user, Password(user))
	wantStatus(t, res, 200)
	if len(res.GetHeaders("Contact")) != 0 {
		t.Errorf("200 for Contact * lists contacts:\n%s", res)
	}
	if cs, err := reg.Contacts(ctx, user); err != nil || len(cs) != 0 {
		t.Fatalf("Contacts = %+v, %v", cs, err)
	}
	if n, err := reg.RegisteredUsers(ctx); err != nil || n != 0 {
		t.Fatalf("RegisteredUsers = %d, %v", n, err)
	}
}

func TestPathIsStored(t *testing.T) {
	reg := Start(t, Options{})
	ctx := testCtx(t, 20*time.Second)
	u := newUAC(t, reg)
	req := u.registerRequest(user, "UDP", 60, "<sip:"+user+"@127.0.0.1:5099>")
	req.AppendHeader(sip.NewHeader("Path", "<sip:127.0.0.1:5999;lr>"))
	req.AppendHeader(sip.NewHeader("Supported", "path"))
	_, res := u.register(t, ctx, req, user, Password(user))
	wantStatus(t, res, 200)
	if h := res.GetHeader("Path"); h == nil || h.Value() != "<sip:127.0.0.1:5999;lr>" {
		t.Errorf("200 does not echo the Path:\n%s", res)
	}
	cs, err := reg.Contacts(ctx, user)
	if err != nil || len(cs) != 1 || cs[0].Path != "<sip:127.0.0.1:5999;lr>" {
		t.Fatalf("Contacts = %+v, %v", cs, err)
	}
}

// callee is a sipgo user agent answering INVITEs 486 Busy Here.
type callee struct {
	ua      *sipgo.UserAgent
	addr    *net.UDPAddr // where it listens, nil if it does not
	invites chan *sip.Request
}

// newCallee starts a callee; with listen, it serves UDP on 127.0.0.1:0.
func newCallee(t *testing.T, listen bool) *callee {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("callee"), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	c := &callee{ua: ua, invites: make(chan *sip.Request, 10)}
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		c.invites <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusBusyHere, "Busy Here", nil))
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	var l net.PacketConn
	if listen {
		l, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c.addr = l.LocalAddr().(*net.UDPAddr)
		go func() { _ = srv.ServeUDP(l) }()
	}
	t.Cleanup(func() {
		srv.Close()
		ua.Close()
		if l != nil {
			l.Close()
		}
	})
	return c
}

func (u *uac) invite(t *testing.T, ctx context.Context, to string) *sip.Response {
	t.Helper()
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: to, Host: "127.0.0.1", Port: u.reg.Port()})
	req.AppendHeader(sip.NewHeader("Contact", "<sip:caller@127.0.0.1>"))
	req.SetTransport("UDP")
	res, err := u.cl.Do(ctx, req)
	if err != nil {
		t.Fatalf("INVITE %s: %v", to, err)
	}
	return res
}

func TestInviteReachesRegisteredContact(t *testing.T) {
	reg := Start(t, Options{})
	ctx := testCtx(t, 20*time.Second)
	bob := newCallee(t, true)
	u := newUAC(t, reg)
	contact := fmt.Sprintf("sip:%s@127.0.0.1:%d", user, bob.addr.Port)
	_, res := u.register(t, ctx, u.registerRequest(user, "UDP", 60, "<"+contact+">"), user, Password(user))
	wantStatus(t, res, 200)

	caller := newUAC(t, reg)
	res = caller.invite(t, ctx, user)
	wantStatus(t, res, sip.StatusBusyHere)
	select {
	case inv := <-bob.invites:
		if inv.Recipient.String() != contact {
			t.Errorf("INVITE Request-URI %s, want the contact %s", inv.Recipient.String(), contact)
		}
		if inv.GetHeader("Record-Route") == nil {
			t.Errorf("INVITE not record-routed:\n%s", inv)
		}
	default:
		t.Fatal("the 486 did not come from the registered UA")
	}

	// Not registered: 404, nothing reaches the callee.
	res = caller.invite(t, ctx, "+4790000002")
	wantStatus(t, res, sip.StatusNotFound)
	if len(bob.invites) != 0 {
		t.Fatal("INVITE for an unregistered user reached the callee")
	}
}

func TestReceivedIsStoredAndUsed(t *testing.T) {
	reg := Start(t, Options{Received: true})
	ctx := testCtx(t, 20*time.Second)
	// bob registers from sipgo's client socket, with a Contact where nobody
	// listens: the registrar stores the source address and sends the INVITE
	// there, where bob's server handler gets it.
	bob := newCallee(t, false)
	cl, err := sipgo.NewClient(bob.ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	u := &uac{ua: bob.ua, cl: cl, reg: reg}
	contact := "sip:" + user + "@127.0.0.1:9"
	_, res := u.register(t, ctx, u.registerRequest(user, "UDP", 60, "<"+contact+">"), user, Password(user))
	wantStatus(t, res, 200)
	cs, err := reg.Contacts(ctx, user)
	if err != nil || len(cs) != 1 || cs[0].URI != contact {
		t.Fatalf("Contacts = %+v, %v", cs, err)
	}
	if !strings.HasPrefix(cs[0].Received, "sip:127.0.0.1:") || !strings.HasSuffix(cs[0].Received, ";transport=udp") {
		t.Fatalf("Received %q", cs[0].Received)
	}

	res = newUAC(t, reg).invite(t, ctx, user)
	wantStatus(t, res, sip.StatusBusyHere)
	select {
	case inv := <-bob.invites:
		if inv.Recipient.String() != contact {
			t.Errorf("INVITE Request-URI %s, want the contact %s", inv.Recipient.String(), contact)
		}
	default:
		t.Fatal("the 486 did not come from bob")
	}
}

func TestRestartEmptiesTable(t *testing.T) {
	reg := Start(t, Options{})
	ctx := testCtx(t, 30*time.Second)
	u := newUAC(t, reg)
	req := func() *sip.Request { return u.registerRequest(user, "UDP", 60, "<sip:"+user+"@127.0.0.1:5099>") }
	_, res := u.register(t, ctx, req(), user, Password(user))
	wantStatus(t, res, 200)
	port := reg.Port()
	reg.Restart(t)
	if reg.Port() != port {
		t.Fatalf("port %d after restart, was %d", reg.Port(), port)
	}
	if n, err := reg.RegisteredUsers(ctx); err != nil || n != 0 {
		t.Fatalf("RegisteredUsers after restart = %d, %v", n, err)
	}
	_, res = u.register(t, ctx, req(), user, Password(user))
	wantStatus(t, res, 200)
	if n, err := reg.RegisteredUsers(ctx); err != nil || n != 1 {
		t.Fatalf("RegisteredUsers = %d, %v", n, err)
	}
}

// TestLargeTable fills the location table with 10,000 AORs (200 with
// -short) over RPC, as a load test would by REGISTERs, and reads it back
// whole: ul.dump is then about 5 MB.
func TestLargeTable(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 200
	}
	reg := Start(t, Options{})
	ctx := testCtx(t, 120*time.Second)
	start := time.Now()
	for i := range n {
		aor := fmt.Sprintf("+47%08d", i)
		// table, AOR, contact, expires, q, path, flags, cflags, methods
		if _, err := reg.RPC(ctx, "ul.add", "location", aor, "sip:"+aor+"@127.0.0.1:5099",
			600, json.Number("1.0"), ".", 0, 0, 0); err != nil {
			t.Fatalf("ul.add %s: %v", aor, err)
		}
	}
	t.Logf("%d ul.add RPCs: %v", n, time.Since(start))
	if c, err := reg.ContactCount(ctx); err != nil || c != n {
		t.Fatalf("ContactCount = %d, %v", c, err)
	}
	start = time.Now()
	users, err := reg.RegisteredUsers(ctx)
	if err != nil || users != n {
		t.Fatalf("RegisteredUsers = %d, %v", users, err)
	}
	t.Logf("RegisteredUsers: %v", time.Since(start))
	start = time.Now()
	all, err := reg.AllContacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("AllContacts: %d AORs in %v", len(all), time.Since(start))
	if len(all) != n {
		t.Fatalf("AllContacts: %d AORs, want %d", len(all), n)
	}
	aor := fmt.Sprintf("+47%08d", n/2)
	cs := all[aor]
	if len(cs) != 1 || cs[0].URI != "sip:"+aor+"@127.0.0.1:5099" || cs[0].AOR != aor ||
		cs[0].Expires <= 0 || cs[0].Expires > 600*time.Second {
		t.Fatalf("AllContacts[%s] = %+v", aor, cs)
	}
}

func TestAORKey(t *testing.T) {
	for in, want := range map[string]string{
		"+4790000001":                      "+4790000001",
		"sip:+4790000001@127.0.0.1":        "+4790000001",
		"sip:+4790000001@127.0.0.1:5060":   "+4790000001",
		"sips:alice@example.com;transport": "alice",
		"alice@example.com":                "alice",
	} {
		if got := AORKey(in); got != want {
			t.Errorf("AORKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBadOptions(t *testing.T) {
	if _, err := newRegistrar(Options{Algorithm: "SHA-512-256"}); err == nil {
		t.Error("algorithm SHA-512-256 accepted")
	}
	if _, err := newRegistrar(Options{Realm: `a"b`}); err == nil {
		t.Error("realm with a quote accepted")
	}
}

func TestBrokenConfigFailsWithLog(t *testing.T) {
	cfg := t.TempDir() + "/broken.cfg"
	if err := os.WriteFile(cfg, []byte("#!KAMAILIO\nrequest_route { no_such_function(); }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := newRegistrar(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(r.Dir())
	defer r.Stop()
	if r.port, err = freePortBoth(); err != nil {
		t.Fatal(err)
	}
	err = r.start()
	if !errors.Is(err, errExited) {
		t.Fatalf("start: %v, want %v", err, errExited)
	}
	if !strings.Contains(r.Log(), "no_such_function") {
		t.Fatalf("log does not explain:\n%s", r.Log())
	}
}

func TestPortTakenIsRecognised(t *testing.T) {
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r, err := newRegistrar(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(r.Dir())
	defer r.Stop()
	r.port = l.LocalAddr().(*net.UDPAddr).Port
	if err := r.start(); !errors.Is(err, errExited) {
		t.Fatalf("start on a taken port: %v, want %v", err, errExited)
	}
	if !r.portTakenSince(0) {
		t.Fatalf("not recognised as a taken port:\n%s", r.Log())
	}
}
