package camara

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"callpath/devreg"
	"callpath/store"
)

// loadRegistrationSpec loads webrtc-registration.yaml (r2.2) with its
// documented bug fixed in the loader only: deviceId's "pattern: uuid" is a
// regular expression for the word "uuid"; it is meant as format uuid.
func loadRegistrationSpec(t testing.TB) *openapi3.T {
	return loadSpec(t, "webrtc-registration.yaml", func(doc *openapi3.T) error {
		ref := doc.Components.Schemas["regSessionRequest"]
		if ref == nil || ref.Value.Properties["deviceId"] == nil || ref.Value.Properties["deviceId"].Value.Pattern != "uuid" {
			return errorString("regSessionRequest.deviceId: not the r2.2 bug the fix expects")
		}
		d := ref.Value.Properties["deviceId"].Value
		d.Pattern, d.Format = "", "uuid"
		return nil
	})
}

type errorString string

func (e errorString) Error() string { return string(e) }

const regBase = "/webrtc-registration/v0.3"

var regScopes = []string{registrationScopeCreate, registrationScopeWrite, registrationScopeDelete}

// regFixture serves webrtc-registration next to webrtc-events on one
// store: a registration's end reaches the events' subscribers.
type regFixture struct {
	*fixture
	devices *devreg.Service
	clock   time.Time
	rc      *client
}

func newRegFixture(t testing.TB) *regFixture {
	t.Helper()
	f := &regFixture{fixture: newFixture(t), clock: time.Now().UTC()}
	f.devices = &devreg.Service{
		Store: store.DeviceRegistrations{DB: f.db, Ended: func(tx *store.Tx, r devreg.Registration, reason string, at time.Time) error {
			_, err := f.events.PublishTx(tx, Event{PhoneNumber: r.PhoneNumber, Type: TypeRegistrationEnds, RegistrationID: r.ID,
				Data: map[string]any{"registrationId": r.ID, "terminationReason": reason}})
			return err
		}, Deleted: func(tx *store.Tx, id string) error {
			_, err := f.events.EndRegistrationTx(tx, id)
			return err
		}},
		Policy: devreg.Policy{DefaultTTL: time.Hour, MinTTL: time.Minute, MaxTTL: 24 * time.Hour},
		Now:    func() time.Time { return f.clock },
	}
	api := &Registration{BasePath: regBase, Verifier: f.events.cfg.Verifier, Devices: f.devices}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	f.rc = &client{t: t, base: srv.URL + regBase, spec: newSpecChecker(t, loadRegistrationSpec(t), srv.URL, regBase)}
	return f
}

const deviceA = "7d444840-9dc0-11d1-b245-5ffdce74fad2"

func TestRegistrationLifecycle(t *testing.T) {
	f := newRegFixture(t)
	tok := f.token(alice, regScopes...)

	r := f.rc.do("POST", "/sessions", tok, map[string]any{"deviceId": deviceA}, "x-correlator", "reg-1")
	if r.status != http.StatusOK || r.header.Get("x-correlator") != "reg-1" {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var created regSessionResponse
	decode(t, r.body, &created)
	if created.RegInfo == nil || created.RegInfo.PhoneNumber != alice || created.RegInfo.RegStatus != "Registered" {
		t.Fatalf("created %+v", created)
	}
	if exp, _ := time.Parse(time.RFC3339Nano, created.ExpiresAt); !exp.Equal(f.clock.Add(time.Hour).Truncate(time.Nanosecond)) && exp.Sub(f.clock.Add(time.Hour)).Abs() > time.Second {
		t.Errorf("expiresAt %s, want the default hour", created.ExpiresAt)
	}

	// Refresh: from now, with a requested time capped at the maximum.
	f.clock = f.clock.Add(30 * time.Minute)
	r = f.rc.do("PUT", "/sessions/"+created.RegistrationID, tok,
		map[string]any{"registrationExpireTime": f.clock.Add(72 * time.Hour).Format(time.RFC3339)})
	var refreshed regSessionResponse
	decode(t, r.body, &refreshed)
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	if exp, _ := time.Parse(time.RFC3339Nano, refreshed.ExpiresAt); exp.Sub(f.clock.Add(24*time.Hour)).Abs() > time.Second {
		t.Errorf("expiresAt %s, want now + the 24 h maximum", refreshed.ExpiresAt)
	}
	// An empty body refreshes with the default.
	if r := f.rc.do("PUT", "/sessions/"+created.RegistrationID, tok, nil); r.status != http.StatusOK {
		t.Fatalf("refresh without body: %d %s", r.status, r.body)
	}

	// Another subscriber cannot see or touch it; unknown ids are 404 too.
	other := f.token(bob, regScopes...)
	for _, req := range []struct{ method, path, token string }{
		{"PUT", "/sessions/" + created.RegistrationID, other},
		{"DELETE", "/sessions/" + created.RegistrationID, other},
		{"DELETE", "/sessions/no-such-registration", tok},
	} {
		if r := f.rc.do(req.method, req.path, req.token, nil); r.status != http.StatusNotFound || r.error().Code != "NOT_FOUND" {
			t.Errorf("%s %s: %d %s", req.method, req.path, r.status, r.body)
		}
	}
	if r := f.rc.do("DELETE", "/sessions/"+created.RegistrationID, tok, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := f.rc.do("PUT", "/sessions/"+created.RegistrationID, tok, nil); r.status != http.StatusNotFound {
		t.Fatalf("refresh after delete: %d", r.status)
	}
}

func TestRegistrationRefusals(t *testing.T) {
	f := newRegFixture(t)
	tok := f.token(alice, regScopes...)
	for name, tc := range map[string]struct {
		token  string
		body   any
		status int
		code   string
	}{
		"no token":              {"", map[string]any{"deviceId": deviceA}, 401, "UNAUTHENTICATED"},
		"bad token":             {"not-a-token", map[string]any{"deviceId": deviceA}, 401, "UNAUTHENTICATED"},
		"wrong scope":           {f.token(alice, registrationScopeWrite), map[string]any{"deviceId": deviceA}, 403, "PERMISSION_DENIED"},
		"no subscriber":         {f.token("", regScopes...), map[string]any{"deviceId": deviceA}, 403, "PERMISSION_DENIED"},
		"no body":               {tok, nil, 400, "INVALID_ARGUMENT"},
		"not JSON":              {tok, "{deviceId", 400, "INVALID_ARGUMENT"},
		"no deviceId":           {tok, map[string]any{"other": 1}, 400, "INVALID_ARGUMENT"},
		"deviceId not a UUID":   {tok, map[string]any{"deviceId": "uuid"}, 400, "INVALID_ARGUMENT"},
		"expiry without a zone": {tok, map[string]any{"deviceId": deviceA, "registrationExpireTime": "2026-11-22T12:00:00"}, 400, "INVALID_ARGUMENT"},
		"expiry too soon":       {tok, map[string]any{"deviceId": deviceA, "registrationExpireTime": time.Now().Add(10 * time.Second).UTC().Format(time.RFC3339)}, 400, "OUT_OF_RANGE"},
	} {
		r := f.rc.do("POST", "/sessions", tc.token, tc.body)
		if r.status != tc.status || r.error().Code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", name, r.status, r.body, tc.status, tc.code)
		}
	}
	if r := f.rc.do("PATCH", "/sessions/x", tok, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PATCH: %d", r.status)
	}
}

// A registration that expires ends with registration-ends
// (REGISTRATION_EXPIRED) to the subscription that asked for it, in the same
// transaction; the event is valid per the events spec.
func TestRegistrationExpiryReachesSubscribers(t *testing.T) {
	f := newRegFixture(t)
	r := f.rc.do("POST", "/sessions", f.token(alice, regScopes...), map[string]any{"deviceId": deviceA})
	var reg regSessionResponse
	decode(t, r.body, &reg)
	sub := validRequest()
	sub["types"] = []string{TypeRegistrationEnds}
	sub["config"].(map[string]any)["subscriptionDetail"] = map[string]any{"registrationId": reg.RegistrationID}
	f.create(alice, sub)
	before, _ := f.db.DueEvents(context.Background(), time.Now().Add(time.Hour), 100)

	f.clock = f.clock.Add(2 * time.Hour)
	if n, err := f.devices.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	after, _ := f.db.DueEvents(context.Background(), time.Now().Add(3*time.Hour), 100)
	var found map[string]any
	for _, e := range after {
		if e.Type == TypeRegistrationEnds {
			found = f.c.spec.checkEvent(t, e.Body)
		}
	}
	if found == nil {
		t.Fatalf("no registration-ends event (outbox before %d, after %d)", len(before), len(after))
	}
	data := found["data"].(map[string]any)
	if data["registrationId"] != reg.RegistrationID || data["terminationReason"] != devreg.ReasonExpired {
		t.Fatalf("event data %v", data)
	}
}

// eventsOf returns the types and data of the events sent to subscription
// id, in order.
func eventsOf(t testing.TB, f *regFixture, events []store.OutboxEvent, id string) (types []string, data []map[string]any) {
	t.Helper()
	for _, e := range events {
		if e.SubscriptionID != id {
			continue
		}
		ev := f.c.spec.checkEvent(t, e.Body)
		types = append(types, e.Type)
		data = append(data, ev["data"].(map[string]any))
	}
	return types, data
}

// In r2.2 a subscription serves the registration it names: when that
// registration ends, however it ends, so do its subscriptions, each with
// subscription-ended after whatever event the registration's end sent;
// a subscription of another registration of the same subscriber stays.
func TestRegistrationEndEndsItsSubscriptions(t *testing.T) {
	f := newRegFixture(t)
	register := func(device string) string {
		r := f.rc.do("POST", "/sessions", f.token(alice, regScopes...), map[string]any{"deviceId": device})
		var reg regSessionResponse
		decode(t, r.body, &reg)
		return reg.RegistrationID
	}
	subscribe := func(regID string) string {
		sub := validRequest()
		sub["types"] = []string{TypeRegistrationEnds}
		sub["config"].(map[string]any)["subscriptionDetail"] = map[string]any{"registrationId": regID}
		return f.create(alice, sub).ID
	}
	const deviceB = "9b2cf5a4-2f0b-4a55-8f55-0d2f4c3e8a01"
	expiring, deleted, kept := register(deviceA), register(deviceB), ""
	subExpiring, subDeleted := subscribe(expiring), subscribe(deleted)
	f.drain()

	// DELETE by the device: no registration-ends (r2.2 has no reason for
	// it), but the subscription ends.
	f.rc.do("DELETE", "/sessions/"+deleted, f.token(alice, regScopes...), nil)
	kept = register(deviceB)
	subKept := subscribe(kept)
	types, data := eventsOf(t, f, f.drain(), subDeleted)
	if len(types) != 1 || types[0] != TypeSubscriptionEnded || data[0]["terminationReason"] != ReasonNetworkTerminated {
		t.Fatalf("after DELETE: %v %v", types, data)
	}

	// Expiry: registration-ends first, then subscription-ended.
	if _, err := f.devices.Refresh(context.Background(), alice, kept, f.clock.Add(20*time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.clock = f.clock.Add(2 * time.Hour)
	if n, err := f.devices.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	events := f.drain()
	types, data = eventsOf(t, f, events, subExpiring)
	if len(types) != 2 || types[0] != TypeRegistrationEnds || data[0]["terminationReason"] != devreg.ReasonExpired ||
		types[1] != TypeSubscriptionEnded || data[1]["terminationReason"] != ReasonNetworkTerminated {
		t.Fatalf("after expiry: %v %v", types, data)
	}
	if types, _ := eventsOf(t, f, events, subKept); len(types) != 0 {
		t.Fatalf("the other registration's subscription got %v", types)
	}
	r := f.c.do("GET", "/subscriptions/"+subKept, f.token(alice), nil)
	var got subscriptionResponse
	decode(t, r.body, &got)
	if got.Status != store.SubscriptionActive {
		t.Fatalf("the other registration's subscription is %s", got.Status)
	}
	r = f.c.do("GET", "/subscriptions/"+subExpiring, f.token(alice), nil)
	decode(t, r.body, &got)
	if got.Status != store.SubscriptionDeleted {
		t.Fatalf("the expired registration's subscription is %s", got.Status)
	}
}

func decode(t testing.TB, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
}
