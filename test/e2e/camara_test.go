package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"callpath/auth"
	"callpath/internal/sinktest"
)

const (
	regBase    = "/webrtc-registration/v0.3"
	eventsBase = "/webrtc-events/v0.2"
	typeEnds   = "org.camaraproject.webrtc-events.v0.registration-ends"
	typeEnded  = "org.camaraproject.webrtc-events.v0.subscription-ended"
)

// camaraConfig lets sinks on loopback be used (the test sink) and makes
// registrations short and their expiry checked often.
func camaraConfig(sink *sinktest.Sink) string {
	return fmt.Sprintf(`camara:
  sweep_interval: 50ms
  registration: {min_ttl: 1s, default_ttl: 3600s}
  sinks: {allow_cidrs: ["127.0.0.0/8"], ca_file: %q}
  delivery: {retry_min: 50ms, retry_max: 200ms}
`, sink.CA.CAFile)
}

// camaraClient calls the CAMARA APIs of one gateway as one subscriber.
type camaraClient struct {
	t     *testing.T
	base  string
	token string
}

func newCAMARAClient(t *testing.T, httpAddr string, issuer *auth.DevIssuer, number string) *camaraClient {
	t.Helper()
	tok, err := issuer.Mint(auth.Token{Subject: "app-" + number, PhoneNumber: number, TTL: time.Hour, Scopes: []string{
		"webrtc-registration:sessions:create", "webrtc-registration:sessions:write", "webrtc-registration:sessions:delete",
		"webrtc-events:" + typeEnds + ":create", "webrtc-events:read", "webrtc-events:delete", "webrtc-events:update",
	}})
	if err != nil {
		t.Fatal(err)
	}
	return &camaraClient{t: t, base: "http://" + httpAddr, token: tok}
}

func (c *camaraClient) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	code, out, _ := c.request(method, path, body, nil)
	return code, out
}

// request sends a JSON body (nil: none) with extra headers and returns the
// status, the decoded JSON object and the response's headers.
func (c *camaraClient) request(method, path string, body any, headers map[string]string) (int, map[string]any, http.Header) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out, res.Header
}

// register creates a device registration ending at expires (zero: the
// default) and returns its id.
func (c *camaraClient) register(device string, expires time.Time) string {
	c.t.Helper()
	body := map[string]any{"deviceId": device}
	if !expires.IsZero() {
		body["registrationExpireTime"] = expires.UTC().Format(time.RFC3339Nano)
	}
	code, out := c.do("POST", regBase+"/sessions", body)
	if code != http.StatusOK {
		c.t.Fatalf("register: %d %v", code, out)
	}
	return out["registrationId"].(string)
}

// subscribe subscribes to registration-ends of registration regID at sink.
func (c *camaraClient) subscribe(sink *sinktest.Sink, regID, sinkToken string) string {
	c.t.Helper()
	code, out := c.do("POST", eventsBase+"/subscriptions", map[string]any{
		"protocol": "HTTP", "sink": sink.URL, "types": []string{typeEnds},
		"sinkCredential": map[string]any{"credentialType": "ACCESSTOKEN", "accessToken": sinkToken,
			"accessTokenExpiresUtc": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339), "accessTokenType": "bearer"},
		"config": map[string]any{"subscriptionDetail": map[string]any{"registrationId": regID}},
	})
	if code != http.StatusCreated {
		c.t.Fatalf("subscribe: %d %v", code, out)
	}
	return out["id"].(string)
}

// A device registers, subscribes to registration-ends at an HTTPS sink,
// and lets the registration expire: the sink gets the CloudEvent with the
// subscription's bearer token, after failing three times first, and then
// subscription-ended: the subscription served that registration.
func TestRegistrationEndsReachTheSink(t *testing.T) {
	sink := sinktest.Start(t)
	gw := startGateway(t, "127.0.0.1:9", camaraConfig(sink))
	c := newCAMARAClient(t, gw.app.HTTPAddr(), gw.app.DevIssuer(), "+4790000001")

	regID := c.register("0b6f5f2e-7f5c-4c1e-9a5b-2f4f0e6c7a11", time.Now().Add(1500*time.Millisecond))
	subID := c.subscribe(sink, regID, "sink-secret")
	sink.FailNext(3)

	ev := sink.WaitEvents(1, 10*time.Second)[0]
	if ev.Type != typeEnds || ev.SpecVersion != "1.0" || ev.ContentType != "application/cloudevents+json" ||
		ev.Authorization != "Bearer sink-secret" {
		t.Fatalf("event %+v", ev)
	}
	var data map[string]any
	_ = json.Unmarshal(ev.Data, &data)
	if data["registrationId"] != regID || data["terminationReason"] != "REGISTRATION_EXPIRED" || data["subscriptionId"] != subID {
		t.Fatalf("data %v", data)
	}
	if sink.Posts() != 4 {
		t.Errorf("%d POSTs, want 3 refused and 1 accepted", sink.Posts())
	}
	if code, _ := c.do("PUT", regBase+"/sessions/"+regID, nil); code != http.StatusNotFound {
		t.Errorf("refresh of an expired registration: %d", code)
	}

	// In r2.2 the subscription serves that registration alone: it ends
	// with it, told after the registration-ends event.
	evs := sink.WaitEvents(2, 10*time.Second)
	_ = json.Unmarshal(evs[1].Data, &data)
	if evs[1].Type != typeEnded || data["subscriptionId"] != subID || data["terminationReason"] != "NETWORK_TERMINATED" {
		t.Fatalf("second event %+v", evs[1])
	}
	if code, _ := c.do("PUT", eventsBase+"/subscriptions/"+subID, map[string]any{
		"config": map[string]any{"subscriptionExpireTime": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}}); code != http.StatusNotFound {
		t.Fatalf("refresh of the ended subscription: %d", code)
	}
	if code, out := c.do("GET", eventsBase+"/subscriptions/"+subID, nil); code != http.StatusOK || out["status"] != "DELETED" {
		t.Fatalf("ended subscription: %d %v", code, out)
	}
	for _, series := range []string{`callpath_events_deliveries_total{outcome="delivered"} 2`, `callpath_events_deliveries_total{outcome="retry"} 3`} {
		name, want, _ := strings.Cut(series, " ")
		eventually(t, 5*time.Second, series, func() bool { return gw.metric(name) == want })
	}
	if got := gw.metric(`callpath_camara_requests_total{api="webrtc-registration",code="200",operation="POST /webrtc-registration/v0.3/sessions"}`); got != "1" {
		t.Errorf("request metric %q", got)
	}
}

// The operator stops the service for one subscriber: each of its open
// subscriptions ends with subscription-ended NETWORK_TERMINATED; another
// subscriber's stays. Apps cannot do it, and "everyone" must be asked for
// in words.
func TestOperatorTerminatesSubscriptions(t *testing.T) {
	sink := sinktest.Start(t)
	gw := startGateway(t, "127.0.0.1:9", camaraConfig(sink))
	alice := newCAMARAClient(t, gw.app.HTTPAddr(), gw.app.DevIssuer(), "+4790000001")
	bob := newCAMARAClient(t, gw.app.HTTPAddr(), gw.app.DevIssuer(), "+4790000002")
	aliceSub := alice.subscribe(sink, alice.register("0b6f5f2e-7f5c-4c1e-9a5b-2f4f0e6c7a11", time.Time{}), "alice-sink")
	bobSub := bob.subscribe(sink, bob.register("5d0c8a8e-4f6b-4a53-9d55-8b7f3a1e2c90", time.Time{}), "bob-sink")

	ops, err := gw.app.DevIssuer().Mint(auth.Token{Subject: "ops", Scopes: []string{"callpath:operator"}})
	if err != nil {
		t.Fatal(err)
	}
	terminate := func(token, query string) (int, map[string]any) {
		req, _ := http.NewRequest("DELETE", "http://"+gw.app.HTTPAddr()+"/events/v1/subscriptions"+query, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	if code, _ := terminate(alice.token, "?phoneNumber=%2B4790000001"); code != http.StatusForbidden {
		t.Fatalf("an app's token terminated subscriptions: %d", code)
	}
	for _, q := range []string{"", "?all=yes", "?phoneNumber=4790000001", "?phoneNumber=%2B4790000001&all=true"} {
		if code, _ := terminate(ops, q); code != http.StatusBadRequest {
			t.Fatalf("DELETE /events/v1/subscriptions%s: %d, want 400", q, code)
		}
	}
	if code, out := terminate(ops, "?phoneNumber=%2B4790000001"); code != http.StatusOK || out["ended"] != float64(1) {
		t.Fatalf("terminate: %d %v", code, out)
	}
	ev := sink.WaitEvents(1, 10*time.Second)[0]
	var data map[string]any
	_ = json.Unmarshal(ev.Data, &data)
	if ev.Type != typeEnded || ev.Authorization != "Bearer alice-sink" || data["subscriptionId"] != aliceSub ||
		data["terminationReason"] != "NETWORK_TERMINATED" || data["terminationDescription"] == nil {
		t.Fatalf("event %+v %v", ev, data)
	}
	if code, out := bob.do("GET", eventsBase+"/subscriptions/"+bobSub, nil); code != http.StatusOK || out["status"] != "ACTIVE" {
		t.Fatalf("bob's subscription: %d %v", code, out)
	}
	if code, out := terminate(ops, "?phoneNumber=%2B4790000001"); code != http.StatusOK || out["ended"] != float64(0) {
		t.Fatalf("terminating again: %d %v", code, out)
	}
}

// A sink on a loopback address is refused unless the operator allows it.
func TestLoopbackSinkRefusedByDefault(t *testing.T) {
	sink := sinktest.Start(t)
	gw := startGateway(t, "127.0.0.1:9", "")
	c := newCAMARAClient(t, gw.app.HTTPAddr(), gw.app.DevIssuer(), "+4790000001")
	regID := c.register("0b6f5f2e-7f5c-4c1e-9a5b-2f4f0e6c7a11", time.Time{})
	subscribe := func(sink string) (int, map[string]any) {
		return c.do("POST", eventsBase+"/subscriptions", map[string]any{
			"protocol": "HTTP", "sink": sink, "types": []string{typeEnds},
			"sinkCredential": map[string]any{"credentialType": "ACCESSTOKEN", "accessToken": "t",
				"accessTokenExpiresUtc": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "accessTokenType": "bearer"},
			"config": map[string]any{"subscriptionDetail": map[string]any{"registrationId": regID}},
		})
	}
	if code, out := subscribe(sink.URL); code != http.StatusBadRequest || out["code"] != "INVALID_SINK" {
		t.Fatalf("loopback sink: %d %v", code, out)
	}
	// The relay's sink path on another port is not the embedded relay's.
	if code, out := subscribe("http://127.0.0.1:1/relay/v1/sinks/x"); code != http.StatusBadRequest || out["code"] != "INVALID_SINK" {
		t.Fatalf("a relay-like loopback sink elsewhere: %d %v", code, out)
	}
	// The embedded relay's own sinks are accepted: they never leave the
	// process.
	if code, out := subscribe("http://" + gw.app.HTTPAddr() + "/relay/v1/sinks/x"); code != http.StatusCreated {
		t.Fatalf("the embedded relay's sink: %d %v", code, out)
	}
}

// An event the sink refuses for good (400) becomes a dead letter, which
// operators can list (without the sink token); apps cannot.
func TestDeadLettersVisibleToOperators(t *testing.T) {
	sink := sinktest.Start(t)
	gw := startGateway(t, "127.0.0.1:9", camaraConfig(sink))
	c := newCAMARAClient(t, gw.app.HTTPAddr(), gw.app.DevIssuer(), "+4790000001")
	regID := c.register("0b6f5f2e-7f5c-4c1e-9a5b-2f4f0e6c7a11", time.Time{})
	subID := c.subscribe(sink, regID, "sink-secret")
	sink.Refuse()
	if code, _ := c.do("DELETE", eventsBase+"/subscriptions/"+subID, nil); code/100 != 2 {
		t.Fatalf("delete: %d", code)
	}
	ops, err := gw.app.DevIssuer().Mint(auth.Token{Subject: "ops", Scopes: []string{"callpath:operator"}})
	if err != nil {
		t.Fatal(err)
	}
	list := func(token string) (int, []map[string]any) {
		req, _ := http.NewRequest("GET", "http://"+gw.app.HTTPAddr()+"/events/v1/dead-letters", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out []map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	var dead []map[string]any
	eventually(t, 5*time.Second, "a dead letter", func() bool {
		code, out := list(ops)
		dead = out
		return code == http.StatusOK && len(out) == 1
	})
	if dead[0]["subscriptionId"] != subID || dead[0]["sinkHost"] != sink.Addr() || !strings.Contains(dead[0]["lastError"].(string), "400") {
		t.Fatalf("dead letter %v", dead[0])
	}
	raw, _ := json.Marshal(dead)
	if strings.Contains(string(raw), "sink-secret") {
		t.Fatal("the sink token is shown")
	}
	if code, _ := list(c.token); code != http.StatusForbidden {
		t.Fatalf("an app's token listed dead letters: %d", code)
	}
}

// The APIs move under camara.base_path.
func TestCAMARABasePath(t *testing.T) {
	gw := startGateway(t, "127.0.0.1:9", "camara: {base_path: /camara}\n")
	c := newCAMARAClient(t, gw.app.HTTPAddr(), gw.app.DevIssuer(), "+4790000001")
	body := map[string]any{"deviceId": "0b6f5f2e-7f5c-4c1e-9a5b-2f4f0e6c7a11"}
	if code, out := c.do("POST", "/camara"+regBase+"/sessions", body); code != http.StatusOK {
		t.Fatalf("under the base path: %d %v", code, out)
	}
	if code, _ := c.do("POST", regBase+"/sessions", body); code != http.StatusNotFound {
		t.Fatalf("without the base path: %d", code)
	}
}
