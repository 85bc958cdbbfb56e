package camara

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"callpath/auth"
	"callpath/store"

	"github.com/sirupsen/logrus"
)

const (
	alice = "+4799990001"
	bob   = "+4799990002"
)

type fixture struct {
	t      testing.TB
	db     *store.DB
	events *Events
	issuer *auth.DevIssuer
	c      *client
	notify atomic.Int64
}

func newFixture(t testing.TB, opts ...func(*EventsConfig)) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	db, err := store.Open(ctx, filepath.Join(dir, "callpath.db"), store.Options{Logger: logrus.NewEntry(quiet)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	iss, err := auth.LoadOrCreateDevIssuer(filepath.Join(dir, "key"), "test-issuer", "callpath")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, db: db, issuer: iss}
	cfg := EventsConfig{
		DB:       db,
		Verifier: &auth.Verifier{Issuer: "test-issuer", Audience: "callpath", Keys: iss.Keys()},
		Source:   "https://webrtc-gw.example.com",
		ValidateSink: func(s string) error {
			if !strings.HasPrefix(s, "https://") {
				return errors.New("https only")
			}
			return nil
		},
		Notify: func() { f.notify.Add(1) },
		CheckRegistration: func(_ context.Context, number, id string) error {
			if id == "reg-of-someone-else" {
				return ErrSubscriptionMismatch
			}
			return nil
		},
		MaxPerSubscriber: 5,
	}
	for _, o := range opts {
		o(&cfg)
	}
	f.events, err = NewEvents(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.events.Handler())
	t.Cleanup(srv.Close)
	f.c = &client{t: t, base: srv.URL + defaultEventsBasePath, spec: newSpecChecker(t, loadEventsSpec(t), srv.URL, defaultEventsBasePath)}
	return f
}

var allScopes = []string{CreateScope(TypeSessionInvitation), CreateScope(TypeSessionStatus),
	CreateScope(TypeRegistrationEnds), eventsScopeRead, eventsScopeDelete}

// token mints a token for a subscriber (number "" = a client token).
func (f *fixture) token(number string, scopes ...string) string {
	f.t.Helper()
	if scopes == nil {
		scopes = allScopes
	}
	tok, err := f.issuer.Mint(auth.Token{Subject: "user-" + number, PhoneNumber: number, Scopes: scopes, TTL: time.Hour})
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

func validRequest() map[string]any {
	return map[string]any{
		"protocol": "HTTP",
		"sink":     "https://notify.example.com/sink",
		"sinkCredential": map[string]any{"credentialType": "ACCESSTOKEN", "accessToken": "sink-token-1",
			"accessTokenExpiresUtc": time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339), "accessTokenType": "bearer"},
		"types": []string{TypeSessionInvitation},
		"config": map[string]any{
			"subscriptionDetail":     map[string]any{"deviceId": "7d444840-9dc0-11d1-b245-5ffdce74fad2", "registrationId": "reg-1"},
			"subscriptionExpireTime": time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339),
			"subscriptionMaxEvents":  50,
			"initialEvent":           true,
		},
	}
}

func (f *fixture) create(number string, req map[string]any) subscriptionResponse {
	f.t.Helper()
	r := f.c.do("POST", "/subscriptions", f.token(number), req)
	if r.status != http.StatusCreated {
		f.t.Fatalf("create: %d %s", r.status, r.body)
	}
	var s subscriptionResponse
	if err := json.Unmarshal(r.body, &s); err != nil {
		f.t.Fatal(err)
	}
	return s
}

// drain takes every live outbox event, oldest first, marking each
// delivered.
func (f *fixture) drain() []store.OutboxEvent {
	f.t.Helper()
	ctx := context.Background()
	var out []store.OutboxEvent
	for {
		due, err := f.db.DueEvents(ctx, time.Now().Add(24*365*time.Hour), 100)
		if err != nil {
			f.t.Fatal(err)
		}
		if len(due) == 0 {
			return out
		}
		for _, e := range due {
			out = append(out, e)
			if err := f.db.Delivered(ctx, e.Seq); err != nil {
				f.t.Fatal(err)
			}
		}
	}
}

func TestSubscriptionCRUD(t *testing.T) {
	f := newFixture(t)
	s := f.create(alice, validRequest())
	if s.ID == "" || s.Status != store.SubscriptionActive || s.Sink != "https://notify.example.com/sink" ||
		s.ExpiresAt == "" || s.Config.SubscriptionDetail.RegistrationID != "reg-1" {
		t.Fatalf("created %+v", s)
	}
	if r := f.c.do("GET", "/subscriptions/"+s.ID, f.token(alice), nil); r.status != 200 || strings.Contains(string(r.body), "sink-token-1") {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	f.create(bob, validRequest())
	r := f.c.do("GET", "/subscriptions", f.token(alice), nil)
	var list []subscriptionResponse
	if err := json.Unmarshal(r.body, &list); err != nil || r.status != 200 || len(list) != 1 || list[0].ID != s.ID {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if r := f.c.do("GET", "/subscriptions", f.token("+4799990099"), nil); r.status != 200 || string(r.body) != "[]" {
		t.Fatalf("empty list: %d %s", r.status, r.body)
	}
	if n := len(f.drain()); n != 0 {
		t.Fatalf("%d events before delete", n)
	}
	before := f.notify.Load()
	if r := f.c.do("DELETE", "/subscriptions/"+s.ID, f.token(alice), nil); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if f.notify.Load() == before {
		t.Error("delete did not notify the deliverer")
	}
	evs := f.drain()
	if len(evs) != 1 {
		t.Fatalf("%d events after delete, want 1 subscription-ended", len(evs))
	}
	ev := evs[0]
	if ev.SubscriptionID != s.ID || ev.Sink != s.Sink || ev.SinkToken != "sink-token-1" || ev.Type != TypeSubscriptionEnded {
		t.Fatalf("outbox row %+v", ev)
	}
	ce := f.c.spec.checkEvent(t, ev.Body)
	data, _ := ce["data"].(map[string]any)
	if ce["specversion"] != "1.0" || ce["id"] != ev.EventID || ce["source"] != "https://webrtc-gw.example.com" ||
		ce["datacontenttype"] != "application/json" || data["subscriptionId"] != s.ID || data["terminationReason"] != ReasonSubscriptionDeleted {
		t.Fatalf("event %s", ev.Body)
	}
	if _, err := time.Parse(time.RFC3339, ce["time"].(string)); err != nil {
		t.Errorf("event time: %v", err)
	}
	// Ended: still readable with its final status, but not deletable again.
	r = f.c.do("GET", "/subscriptions/"+s.ID, f.token(alice), nil)
	var got subscriptionResponse
	_ = json.Unmarshal(r.body, &got)
	if r.status != 200 || got.Status != store.SubscriptionDeleted {
		t.Fatalf("get after delete: %d %s", r.status, r.body)
	}
	if r := f.c.do("DELETE", "/subscriptions/"+s.ID, f.token(alice), nil); r.status != 404 || r.error().Code != "NOT_FOUND" {
		t.Fatalf("second delete: %d %s", r.status, r.body)
	}
	if n := len(f.drain()); n != 0 {
		t.Fatalf("second delete enqueued %d events", n)
	}
}

func TestSubscriptionAuth(t *testing.T) {
	f := newFixture(t)
	s := f.create(alice, validRequest())
	expired, err := f.issuer.Mint(auth.Token{Subject: "u", PhoneNumber: alice, Scopes: allScopes, TTL: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := auth.LoadOrCreateDevIssuer(filepath.Join(t.TempDir(), "k"), "test-issuer", "callpath")
	forged, _ := other.Mint(auth.Token{Subject: "u", PhoneNumber: alice, Scopes: allScopes})
	ops := []struct {
		method, path string
		body         any
		scope        string
	}{
		{"POST", "/subscriptions", validRequest(), CreateScope(TypeSessionInvitation)},
		{"GET", "/subscriptions", nil, eventsScopeRead},
		{"GET", "/subscriptions/" + s.ID, nil, eventsScopeRead},
		{"DELETE", "/subscriptions/" + s.ID, nil, eventsScopeDelete},
	}
	for _, op := range ops {
		for name, tok := range map[string]string{"missing": "", "expired": expired, "forged": forged, "garbage": "a.b.c"} {
			r := f.c.do(op.method, op.path, tok, op.body)
			if r.status != 401 || r.error().Code != "UNAUTHENTICATED" {
				t.Errorf("%s %s, %s token: %d %s", op.method, op.path, name, r.status, r.body)
			}
		}
		var wrong []string
		for _, sc := range allScopes {
			if sc != op.scope {
				wrong = append(wrong, sc)
			}
		}
		if r := f.c.do(op.method, op.path, f.token(alice, wrong...), op.body); r.status != 403 || r.error().Code != "PERMISSION_DENIED" {
			t.Errorf("%s %s, wrong scope: %d %s", op.method, op.path, r.status, r.body)
		}
		want, code := 403, "PERMISSION_DENIED"
		if op.method == "POST" {
			want, code = 422, "MISSING_IDENTIFIER"
		}
		if r := f.c.do(op.method, op.path, f.token(""), op.body); r.status != want || r.error().Code != code {
			t.Errorf("%s %s, client token: %d %s", op.method, op.path, r.status, r.body)
		}
		if op.path != "/subscriptions" {
			// Another subscriber's subscription is not found, like an unknown one.
			if r := f.c.do(op.method, op.path, f.token(bob), nil); r.status != 404 || r.error().Code != "NOT_FOUND" {
				t.Errorf("%s %s, other subscriber: %d %s", op.method, op.path, r.status, r.body)
			}
		}
	}
	// A create scope for another type than the one asked for is not enough.
	if r := f.c.do("POST", "/subscriptions", f.token(alice, CreateScope(TypeSessionStatus)), validRequest()); r.status != 403 {
		t.Errorf("create with another type's scope: %d %s", r.status, r.body)
	}
	if r := f.c.do("GET", "/subscriptions/"+s.ID, f.token(alice), nil); r.status != 200 {
		t.Errorf("owner get after the others tried: %d %s", r.status, r.body)
	}
	if n := len(f.drain()); n != 0 {
		t.Errorf("refused requests enqueued %d events", n)
	}
}

func TestSubscriptionBadRequests(t *testing.T) {
	f := newFixture(t)
	tok := f.token(alice)
	mod := func(fn func(m map[string]any)) map[string]any {
		m := validRequest()
		fn(m)
		return m
	}
	cfg := func(m map[string]any) map[string]any { return m["config"].(map[string]any) }
	detail := func(m map[string]any) map[string]any { return cfg(m)["subscriptionDetail"].(map[string]any) }
	cred := func(m map[string]any) map[string]any { return m["sinkCredential"].(map[string]any) }
	cases := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"empty", "", 400, "INVALID_ARGUMENT"},
		{"blank", "  ", 400, "INVALID_ARGUMENT"},
		{"null", "null", 400, "INVALID_ARGUMENT"},
		{"array", "[]", 400, "INVALID_ARGUMENT"},
		{"truncated", `{"protocol":`, 400, "INVALID_ARGUMENT"},
		{"trailing", `{} {}`, 400, "INVALID_ARGUMENT"},
		{"empty object", "{}", 400, "INVALID_ARGUMENT"},
		{"types not a list", mod(func(m map[string]any) { m["types"] = TypeSessionInvitation }), 400, "INVALID_ARGUMENT"},
		{"no protocol", mod(func(m map[string]any) { delete(m, "protocol") }), 400, "INVALID_ARGUMENT"},
		{"protocol", mod(func(m map[string]any) { m["protocol"] = "MQTT3" }), 400, "INVALID_PROTOCOL"},
		{"no sink", mod(func(m map[string]any) { delete(m, "sink") }), 400, "INVALID_ARGUMENT"},
		{"http sink", mod(func(m map[string]any) { m["sink"] = "http://notify.example.com" }), 400, "INVALID_SINK"},
		{"no types", mod(func(m map[string]any) { m["types"] = []string{} }), 400, "INVALID_ARGUMENT"},
		{"two types", mod(func(m map[string]any) { m["types"] = []string{TypeSessionInvitation, TypeRegistrationEnds} }), 400, "INVALID_ARGUMENT"},
		{"unknown type", mod(func(m map[string]any) { m["types"] = []string{"org.example.x"} }), 400, "INVALID_ARGUMENT"},
		{"subscription-ended", mod(func(m map[string]any) { m["types"] = []string{TypeSubscriptionEnded} }), 400, "INVALID_ARGUMENT"},
		{"no config", mod(func(m map[string]any) { delete(m, "config") }), 400, "INVALID_ARGUMENT"},
		{"no detail", mod(func(m map[string]any) { delete(cfg(m), "subscriptionDetail") }), 400, "INVALID_ARGUMENT"},
		{"no registrationId", mod(func(m map[string]any) { delete(detail(m), "registrationId") }), 400, "INVALID_ARGUMENT"},
		{"bad deviceId", mod(func(m map[string]any) { detail(m)["deviceId"] = "uuid" }), 400, "INVALID_ARGUMENT"},
		{"status without session", mod(func(m map[string]any) { m["types"] = []string{TypeSessionStatus} }), 400, "INVALID_ARGUMENT"},
		{"credential type", mod(func(m map[string]any) { cred(m)["credentialType"] = "PLAIN" }), 400, "INVALID_CREDENTIAL"},
		{"token type", mod(func(m map[string]any) { cred(m)["accessTokenType"] = "mac" }), 400, "INVALID_TOKEN"},
		{"no access token", mod(func(m map[string]any) { delete(cred(m), "accessToken") }), 400, "INVALID_ARGUMENT"},
		{"sink token expired", mod(func(m map[string]any) { cred(m)["accessTokenExpiresUtc"] = "2020-01-01T00:00:00Z" }), 400, "OUT_OF_RANGE"},
		{"expire time no zone", mod(func(m map[string]any) { cfg(m)["subscriptionExpireTime"] = "2030-01-01T00:00:00" }), 400, "INVALID_ARGUMENT"},
		{"expire time past", mod(func(m map[string]any) { cfg(m)["subscriptionExpireTime"] = "2020-01-01T00:00:00Z" }), 400, "OUT_OF_RANGE"},
		{"max events 0", mod(func(m map[string]any) { cfg(m)["subscriptionMaxEvents"] = 0 }), 400, "OUT_OF_RANGE"},
		{"too large", `{"protocol":"HTTP","x":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, 400, "INVALID_ARGUMENT"},
	}
	for _, c := range cases {
		r := f.c.do("POST", "/subscriptions", tok, c.body)
		if r.status != c.status || r.error().Code != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.body, c.status, c.code)
		}
	}
	if r := f.c.do("POST", "/subscriptions", tok, validRequest(), "Content-Type", "text/plain"); r.status != 415 || r.error().Code != "UNSUPPORTED_MEDIA_TYPE" {
		t.Errorf("text/plain: %d %s", r.status, r.body)
	}
	if r := f.c.do("GET", "/subscriptions", tok, nil, "Accept", "text/html"); r.status != 406 || r.error().Code != "NOT_ACCEPTABLE" {
		t.Errorf("Accept text/html: %d %s", r.status, r.body)
	}
	// Unknown fields are ignored; the examples' misspelt accessTokenExpireUtc is taken.
	ok := mod(func(m map[string]any) {
		m["extra"] = map[string]any{"a": 1}
		c := cred(m)
		c["accessTokenExpireUtc"] = c["accessTokenExpiresUtc"]
		delete(c, "accessTokenExpiresUtc")
	})
	if r := f.c.do("POST", "/subscriptions", tok, ok, "Content-Type", "application/json; charset=utf-8"); r.status != 201 {
		t.Errorf("tolerant create: %d %s", r.status, r.body)
	}
	// A requested expiry beyond the maximum is capped.
	far := mod(func(m map[string]any) {
		cfg(m)["subscriptionExpireTime"] = "2099-01-01T00:00:00Z"
		delete(m, "sinkCredential")
	})
	s := f.create(alice, far)
	exp, _ := time.Parse(time.RFC3339, s.ExpiresAt)
	if exp.After(time.Now().Add(defaultMaxTTL)) || s.Config.SubscriptionExpireTime != "2099-01-01T00:00:00Z" {
		t.Errorf("capped expiry: %+v", s)
	}
	if r := f.c.do("POST", "/subscriptions", tok, mod(func(m map[string]any) { detail(m)["registrationId"] = "reg-of-someone-else" })); r.status != 403 || r.error().Code != "SUBSCRIPTION_MISMATCH" {
		t.Errorf("foreign registrationId: %d %s", r.status, r.body)
	}
	// Two created above; three more reach the cap of 5.
	for range 3 {
		f.create(alice, validRequest())
	}
	if r := f.c.do("POST", "/subscriptions", tok, validRequest()); r.status != 429 || r.error().Code != "QUOTA_EXCEEDED" {
		t.Errorf("over the cap: %d %s", r.status, r.body)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if r := f.c.do(m, "/subscriptions/unknown-id", tok, nil); r.status != 404 || r.error().Code != "NOT_FOUND" {
			t.Errorf("%s unknown id: %d %s", m, r.status, r.body)
		}
	}
}

func TestCorrelatorAndRouter(t *testing.T) {
	f := newFixture(t)
	tok := f.token(alice)
	const corr = "b4333c46-49c0-4f62-80d7-f0ef930f1c46"
	s := f.create(alice, validRequest())
	for _, r := range []struct {
		method, path, token string
		body                any
		status              int
		code                string
	}{
		{"POST", "/subscriptions", tok, validRequest(), 201, ""},
		{"GET", "/subscriptions", tok, nil, 200, ""},
		{"GET", "/subscriptions/" + s.ID, tok, nil, 200, ""},
		{"GET", "/subscriptions/" + s.ID, "", nil, 401, "UNAUTHENTICATED"},
		{"POST", "/subscriptions", tok, "{", 400, "INVALID_ARGUMENT"},
		{"GET", "/nothing-here", tok, nil, 404, "NOT_FOUND"},
		{"PATCH", "/subscriptions/" + s.ID, tok, nil, 405, "METHOD_NOT_ALLOWED"},
		{"PUT", "/subscriptions", tok, nil, 405, "METHOD_NOT_ALLOWED"},
		{"DELETE", "/subscriptions/" + s.ID, tok, nil, 204, ""},
	} {
		got := f.c.do(r.method, r.path, r.token, r.body, CorrelatorHeader, corr)
		if got.status != r.status || r.code != "" && got.error().Code != r.code {
			t.Errorf("%s %s: %d %s", r.method, r.path, got.status, got.body)
		}
		if got.header.Get(CorrelatorHeader) != corr {
			t.Errorf("%s %s: x-correlator not echoed", r.method, r.path)
		}
		if got.status == 405 && got.header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", r.method, r.path)
		}
	}
	for _, bad := range []string{"has space", "semi;colon=equals", strings.Repeat("a", 257)} {
		got := f.c.do("GET", "/subscriptions", tok, nil, CorrelatorHeader, bad)
		if got.status != 400 || got.error().Code != "INVALID_ARGUMENT" || got.header.Get(CorrelatorHeader) != "" {
			t.Errorf("x-correlator %q: %d %s %q", bad, got.status, got.body, got.header.Get(CorrelatorHeader))
		}
	}
}

func TestSweepEndsExpiredSubscriptions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	short := validRequest()
	delete(short, "sinkCredential")
	short["config"].(map[string]any)["subscriptionExpireTime"] = time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339)
	expiring := f.create(alice, short)
	tokenReq := validRequest()
	tokenReq["sinkCredential"].(map[string]any)["accessTokenExpiresUtc"] = time.Now().Add(30 * time.Minute).UTC().Format(time.RFC3339)
	tokenEnds := f.create(alice, tokenReq)
	lasting := f.create(alice, validRequest())

	n, err := f.events.Sweep(ctx, time.Now().Add(time.Minute))
	if err != nil || n != 0 {
		t.Fatalf("early sweep: %d %v", n, err)
	}
	n, err = f.events.Sweep(ctx, time.Now().Add(29*time.Minute+30*time.Second))
	if err != nil || n != 2 {
		t.Fatalf("sweep: %d %v, want 2 ended", n, err)
	}
	reasons := map[string]string{}
	for _, ev := range f.drain() {
		ce := f.c.spec.checkEvent(t, ev.Body)
		d := ce["data"].(map[string]any)
		reasons[d["subscriptionId"].(string)] = d["terminationReason"].(string)
	}
	if len(reasons) != 2 || reasons[expiring.ID] != ReasonSubscriptionExpired || reasons[tokenEnds.ID] != ReasonAccessTokenExpired {
		t.Fatalf("reasons %v", reasons)
	}
	for id, want := range map[string]string{expiring.ID: "EXPIRED", tokenEnds.ID: "EXPIRED", lasting.ID: "ACTIVE"} {
		var s subscriptionResponse
		r := f.c.do("GET", "/subscriptions/"+id, f.token(alice), nil)
		_ = json.Unmarshal(r.body, &s)
		if s.Status != want {
			t.Errorf("%s: status %q, want %s", id, s.Status, want)
		}
	}
	if n, _ := f.events.Sweep(ctx, time.Now().Add(29*time.Minute+30*time.Second)); n != 0 {
		t.Errorf("second sweep ended %d again", n)
	}
	// After the retention, ended subscriptions are purged.
	if _, err := f.events.Sweep(ctx, time.Now().Add(defaultRetention+time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r := f.c.do("GET", "/subscriptions/"+expiring.ID, f.token(alice), nil); r.status != 404 {
		t.Errorf("purged subscription: %d", r.status)
	}
}

func TestPublish(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req := validRequest()
	req["config"].(map[string]any)["subscriptionMaxEvents"] = 2
	limited := f.create(alice, req)
	other := validRequest()
	other["config"].(map[string]any)["subscriptionDetail"].(map[string]any)["registrationId"] = "reg-2"
	otherReg := f.create(alice, other)
	bobs := f.create(bob, validRequest())
	regEnds := validRequest()
	regEnds["types"] = []string{TypeRegistrationEnds}
	f.create(alice, regEnds)

	invite := map[string]any{"mediaSessionId": "0AEE1B58", "originatorAddress": "tel:+4799990002",
		"receiverAddress": "tel:+4799990001", "status": "Initial", "offer": map[string]any{"sdp": "v=0\r\n"},
		"reason": "New incoming call", "sequenceNumber": 1}
	for i := range 3 {
		n, err := f.events.Publish(ctx, Event{PhoneNumber: alice, Type: TypeSessionInvitation, RegistrationID: "reg-1", Data: invite})
		want := 1
		if i == 2 {
			want = 0 // the limit was reached
		}
		if err != nil || n != want {
			t.Fatalf("publish %d: %d %v, want %d", i, n, err, want)
		}
	}
	evs := f.drain()
	var types []string
	for _, ev := range evs {
		ce := f.c.spec.checkEvent(t, ev.Body)
		if ev.SubscriptionID == otherReg.ID || ev.SubscriptionID == bobs.ID {
			t.Errorf("event went to %s", ev.SubscriptionID)
		}
		if d := ce["data"].(map[string]any); d["subscriptionId"] != limited.ID {
			t.Errorf("data.subscriptionId %v", d["subscriptionId"])
		}
		types = append(types, ev.Type)
	}
	want := []string{TypeSessionInvitation, TypeSessionInvitation, TypeSubscriptionEnded}
	if strings.Join(types, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v, want %v", types, want)
	}
	var s subscriptionResponse
	_ = json.Unmarshal(f.c.do("GET", "/subscriptions/"+limited.ID, f.token(alice), nil).body, &s)
	if s.Status != "EXPIRED" {
		t.Errorf("status after max events: %s", s.Status)
	}
	n, err := f.events.Publish(ctx, Event{PhoneNumber: alice, Type: TypeRegistrationEnds,
		Data: map[string]any{"registrationId": "reg-1", "terminationReason": "REGISTRATION_EXPIRED"}})
	if err != nil || n != 1 {
		t.Fatalf("registration-ends: %d %v", n, err)
	}
	for _, ev := range f.drain() {
		f.c.spec.checkEvent(t, ev.Body)
	}
	status := validRequest()
	status["types"] = []string{TypeSessionStatus}
	status["config"].(map[string]any)["subscriptionDetail"].(map[string]any)["sessionId"] = "0AEE1B58"
	f.create(alice, status)
	for _, sid := range []string{"0AEE1B58", "OTHER"} {
		n, err := f.events.Publish(ctx, Event{PhoneNumber: alice, Type: TypeSessionStatus, SessionID: sid,
			Data: map[string]any{"mediaSessionId": sid, "status": "Ringing", "sequenceNumber": 2}})
		if want := map[string]int{"0AEE1B58": 1, "OTHER": 0}[sid]; err != nil || n != want {
			t.Fatalf("session-status for %s: %d %v, want %d", sid, n, err, want)
		}
	}
	if evs := f.drain(); len(evs) != 1 {
		t.Fatalf("session-status events %d", len(evs))
	} else {
		f.c.spec.checkEvent(t, evs[0].Body)
	}
	if ended, err := f.events.End(ctx, otherReg.ID, ReasonNetworkTerminated, "server shutting down"); err != nil || !ended {
		t.Fatalf("end: %v %v", ended, err)
	}
	if evs := f.drain(); len(evs) != 1 || !strings.Contains(string(evs[0].Body), ReasonNetworkTerminated) {
		t.Fatalf("end events %v", evs)
	}
}

// A transaction that fails after ending a subscription and enqueueing its
// subscription-ended leaves both undone.
func TestFailedTransactionEnqueuesNothing(t *testing.T) {
	f := newFixture(t)
	s := f.create(alice, validRequest())
	ctx := context.Background()
	boom := errors.New("boom")
	err := f.db.Update(ctx, func(tx *store.Tx) error {
		sub, err := tx.Subscription(s.ID)
		if err != nil {
			return err
		}
		if ok, err := f.events.endTx(tx, sub, ReasonSubscriptionDeleted, "", time.Now()); err != nil || !ok {
			t.Errorf("end in tx: %v %v", ok, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update: %v", err)
	}
	if evs := f.drain(); len(evs) != 0 {
		t.Fatalf("%d events after a rolled back transaction", len(evs))
	}
	got, err := f.db.Subscription(ctx, s.ID)
	if err != nil || got.Status != store.SubscriptionActive {
		t.Fatalf("after rollback: %+v %v", got, err)
	}
}

func TestSubscriptionUpdate(t *testing.T) {
	if r := newFixture(t).c.do("PUT", "/subscriptions/x", "", `{}`); r.status != 405 {
		t.Fatalf("PUT without EnableUpdate: %d %s", r.status, r.body)
	}
	f := newFixture(t, func(c *EventsConfig) { c.EnableUpdate = true })
	s := f.create(alice, validRequest())
	upd := func() map[string]any {
		return map[string]any{
			"sinkCredential": map[string]any{"credentialType": "ACCESSTOKEN", "accessToken": "sink-token-2",
				"accessTokenExpiresUtc": time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339), "accessTokenType": "bearer"},
			"config": map[string]any{"subscriptionExpireTime": time.Now().Add(5 * time.Hour).UTC().Format(time.RFC3339)},
		}
	}
	upScopes := append([]string{eventsScopeUpdate}, allScopes...)
	tok := f.token(alice, upScopes...)
	r := f.c.do("PUT", "/subscriptions/"+s.ID, tok, upd(), CorrelatorHeader, "put-1")
	var got subscriptionResponse
	_ = json.Unmarshal(r.body, &got)
	if r.status != 200 || got.ExpiresAt == s.ExpiresAt || got.ID != s.ID || r.header.Get(CorrelatorHeader) != "put-1" {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	stored, _ := f.db.Subscription(context.Background(), s.ID)
	if stored.SinkToken != "sink-token-2" {
		t.Errorf("sink token not replaced")
	}
	for name, c := range map[string]struct {
		token  string
		body   any
		status int
		code   string
	}{
		"no token":       {"", upd(), 401, "UNAUTHENTICATED"},
		"no scope":       {f.token(alice), upd(), 403, "PERMISSION_DENIED"},
		"other's":        {f.token(bob, upScopes...), upd(), 404, "NOT_FOUND"},
		"empty":          {tok, `{}`, 400, "INVALID_ARGUMENT"},
		"past":           {tok, map[string]any{"config": map[string]any{"subscriptionExpireTime": "2020-01-01T00:00:00Z"}}, 400, "OUT_OF_RANGE"},
		"detail changed": {tok, map[string]any{"config": map[string]any{"subscriptionExpireTime": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "subscriptionDetail": map[string]any{"registrationId": "reg-9"}}}, 400, "INVALID_ARGUMENT"},
	} {
		if r := f.c.do("PUT", "/subscriptions/"+s.ID, c.token, c.body); r.status != c.status || r.error().Code != c.code {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if r := f.c.do("PUT", "/subscriptions/unknown", tok, upd()); r.status != 404 {
		t.Errorf("unknown: %d %s", r.status, r.body)
	}
	f.c.do("DELETE", "/subscriptions/"+s.ID, tok, nil)
	if r := f.c.do("PUT", "/subscriptions/"+s.ID, tok, upd()); r.status != 404 {
		t.Errorf("ended: %d %s", r.status, r.body)
	}
}

// A session-status change that lands while its subscription is being
// created (initialEvent true) reaches the subscription either way: the
// state the subscription read comes first, the change after it. Here the
// change is made from inside the read, the narrowest place for it: the
// read takes the state before the change, then has the change published
// and gives it a moment to go through. Read inside the subscription's
// transaction (as it must be), the publication cannot go through before
// that transaction commits, and finds the subscription when it does; read
// before it, the change went to no one and the app would never hear of
// it (this test fails that way).
func TestInitialEventMissesNoChange(t *testing.T) {
	var published chan error
	var f *fixture
	f = newFixture(t, func(c *EventsConfig) {
		c.CurrentSession = func(ctx context.Context, number, id string) (any, bool) {
			state := map[string]any{"mediaSessionId": id, "status": "Ringing", "sequenceNumber": 2}
			published = make(chan error, 1)
			go func() {
				_, err := f.events.Publish(context.Background(), Event{PhoneNumber: number, Type: TypeSessionStatus,
					SessionID: id, Data: map[string]any{"mediaSessionId": id, "status": "Connected", "sequenceNumber": 3}})
				published <- err
			}()
			// Not a wait for something to happen: a publication that
			// could go through would do so well within this.
			select {
			case err := <-published:
				published <- err
			case <-time.After(300 * time.Millisecond):
			}
			return state, true
		}
	})
	req := validRequest()
	req["types"] = []string{TypeSessionStatus}
	req["config"].(map[string]any)["subscriptionDetail"].(map[string]any)["sessionId"] = "0AEE1B58"
	f.create(alice, req)
	select {
	case err := <-published:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the change was never published")
	}
	var statuses []string
	for _, ev := range f.drain() {
		data, _ := f.c.spec.checkEvent(t, ev.Body)["data"].(map[string]any)
		statuses = append(statuses, fmt.Sprint(data["status"]))
	}
	if strings.Join(statuses, " ") != "Ringing Connected" {
		t.Fatalf("session-status events %v, want the initial Ringing then Connected", statuses)
	}
}
