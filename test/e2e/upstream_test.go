package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"callpath/auth"
	"callpath/internal/kamailiotest"
	"callpath/internal/sinktest"
	"callpath/internal/siptest"
	"callpath/upstream"
)

// Interop with Kamailio as the telco's registrar (digest authentication,
// test/kamailio/registrar.cfg): accounts added through the operator API are
// registered, refreshed (seen in Kamailio's location table), un-registered
// one by one or all at once (Contact: *); a wrong password ends in Failed
// with the reason; a call Kamailio routes to the registered contact reaches
// the gateway as a call to that number.
func TestUpstreamRegistrationAtKamailio(t *testing.T) {
	for _, algorithm := range []string{"MD5", "SHA-256"} {
		t.Run(algorithm, func(t *testing.T) { upstreamAtKamailio(t, algorithm) })
	}
}

func upstreamAtKamailio(t *testing.T, algorithm string) {
	// Kamailio grants at most 6 s, so the gateway refreshes every 3 s
	// (half-life: the 30 s margin is longer than the binding).
	kam := kamailiotest.Start(t, kamailiotest.Options{Algorithm: algorithm, MinExpires: 1, MaxExpires: 6, Debug: 1})
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, fmt.Sprintf(`upstream:
  ranges:
    - {prefix: "+4790", mode: register, domain: "callpath.test", registrar: %q}
    - {prefix: "+4722", mode: routed}
`, kam.URI()))
	token, err := gw.app.DevIssuer().Mint(auth.Token{Subject: "ops", Scopes: []string{"callpath:operator"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	api := func(method, number, body string) (int, map[string]any) {
		t.Helper()
		url := "http://" + gw.app.HTTPAddr() + "/upstream/v1/accounts/" + number
		req, _ := http.NewRequestWithContext(ctx, method, url, bytes.NewBufferString(body))
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
	put := func(number, password string) {
		t.Helper()
		if code, out := api(http.MethodPut, number, `{"password": "`+password+`"}`); code != http.StatusNoContent {
			t.Fatalf("PUT %s: %d %v", number, code, out)
		}
	}
	ourContacts := func(number string) []kamailiotest.Contact {
		t.Helper()
		all, err := kam.Contacts(ctx, number)
		if err != nil {
			t.Fatal(err)
		}
		var ours []kamailiotest.Contact
		for _, c := range all {
			if strings.Contains(c.URI, gw.udp()) && !c.Expired {
				ours = append(ours, c)
			}
		}
		return ours
	}
	const alice, bob, carol = "+4790000001", "+4790000002", "+4790000003"

	// Registered, with the expiry Kamailio granted.
	put(alice, kamailiotest.Password(alice))
	eventually(t, 5*time.Second, "alice's contact at Kamailio", func() bool { return len(ourContacts(alice)) == 1 })
	first := ourContacts(alice)[0]
	if first.URI != "sip:"+alice+"@"+gw.udp() || first.Expires > 6*time.Second {
		t.Errorf("contact %s expires in %v: want our address with the number, at most the 6 s granted", first.URI, first.Expires)
	}
	eventually(t, 5*time.Second, "alice registered", func() bool {
		_, st := api(http.MethodGet, alice, "")
		return st["state"] == "registered"
	})
	// Refreshed before it lapses: same contact, higher CSeq.
	eventually(t, 10*time.Second, "a refresh in Kamailio's table", func() bool {
		c := ourContacts(alice)
		return len(c) == 1 && c[0].CSeq > first.CSeq
	})

	// A routed number has nothing to register.
	if code, _ := api(http.MethodPut, "+4722000000", `{"password": "x"}`); code != http.StatusUnprocessableEntity {
		t.Errorf("PUT of a routed number: %d", code)
	}

	// Wrong password: Failed, with the reason, and counted.
	put(bob, "not-the-password")
	eventually(t, 5*time.Second, "bob failed", func() bool {
		_, st := api(http.MethodGet, bob, "")
		reason, _ := st["reason"].(string)
		return st["state"] == "failed" && strings.HasPrefix(reason, "authentication failed: 401")
	})
	if got := gw.metric("callpath_upstream_auth_failures_total"); got == "" || got == "0" {
		t.Errorf("auth failures %q", got)
	}
	if len(ourContacts(bob)) != 0 {
		t.Error("a refused account has a contact")
	}

	// A call Kamailio routes to alice's contact reaches the gateway as a
	// call to alice's number (here routed on to the test callee).
	caller := siptest.NewPhone(t, "udp")
	dlg, err := caller.Dial(ctx, caller.InviteFrom(kam.Addr(), "+4722000000", alice, sdpFor(caller, 1, "sendrecv")))
	if err != nil {
		t.Fatal(err)
	}
	in := callee.NextCall(5 * time.Second)
	if in.Req.Recipient.User != alice {
		t.Errorf("callee got a call for %q", in.Req.Recipient.User)
	}
	if err := in.Respond(486, "Busy Here", nil); err != nil {
		t.Fatal(err)
	}
	expectFinal(ctx, t, dlg, 486)
	if r := gw.cdrs(1)[0]; r.To != alice {
		t.Errorf("CDR To %q", r.To)
	}

	// Un-register: our contact goes.
	if code, _ := api(http.MethodDelete, alice, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	eventually(t, 5*time.Second, "alice's contact removed", func() bool { return len(ourContacts(alice)) == 0 })
	// Kamailio drops the contact before its 200 reaches the gateway, which
	// then forgets the registration.
	eventually(t, 5*time.Second, "GET after DELETE answers 404", func() bool {
		code, _ := api(http.MethodGet, alice, "")
		return code == http.StatusNotFound
	})

	// Contact: * removes every contact of the address of record, another
	// device's too.
	put(carol, kamailiotest.Password(carol))
	eventually(t, 5*time.Second, "carol registered", func() bool { return len(ourContacts(carol)) == 1 })
	registerOtherDevice(ctx, t, kam, carol)
	eventually(t, 5*time.Second, "carol has two contacts", func() bool {
		c, err := kam.Contacts(ctx, carol)
		return err == nil && len(c) == 2
	})
	if code, _ := api(http.MethodDelete, carol+"?all=true", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE all: %d", code)
	}
	eventually(t, 5*time.Second, "every contact of carol removed", func() bool {
		c, err := kam.Contacts(ctx, carol)
		return err == nil && len(c) == 0
	})
}

// registerOtherDevice registers another contact for number with sipgo's
// client (its own digest implementation), as a second device would.
func registerOtherDevice(ctx context.Context, t *testing.T, kam *kamailiotest.Registrar, number string) {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("other-device"), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ua.Close() })
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: kam.Port()})
	aor := sip.Uri{Scheme: "sip", User: number, Host: "127.0.0.1"}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	req.AppendHeader(sip.NewHeader("Contact", "<sip:"+number+"@127.0.0.1:5999>"))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(6)))
	res, err := client.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode == sip.StatusUnauthorized {
		res, err = client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: number, Password: kamailiotest.Password(number)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if res.StatusCode != 200 {
		t.Fatalf("other device: %d %s", res.StatusCode, res.Reason)
	}
}

// A device registration of a number the telco registers: when Kamailio
// stops answering and the binding lapses, the registration ends with
// registration-ends NETWORK_TERMINATED at the subscriber's sink.
func TestRegistrationEndsWhenTheRegistrarDropsIt(t *testing.T) {
	kam := kamailiotest.Start(t, kamailiotest.Options{MinExpires: 1, MaxExpires: 4, Debug: 1})
	sink := sinktest.Start(t)
	gw := startGateway(t, "127.0.0.1:9", fmt.Sprintf(`upstream:
  ranges: [{prefix: "+4790", mode: register, domain: "callpath.test", registrar: %q}]
`, kam.URI())+camaraConfig(sink))
	const number = "+4790000001"
	if err := gw.app.Store().PutCredentials(context.Background(), upstream.Credentials{Number: number, Password: kamailiotest.Password(number)}); err != nil {
		t.Fatal(err)
	}
	c := newCAMARAClient(t, gw.app.HTTPAddr(), gw.app.DevIssuer(), number)
	regID := c.register("0b6f5f2e-7f5c-4c1e-9a5b-2f4f0e6c7a11", time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eventually(t, 5*time.Second, "the number registered at Kamailio", func() bool {
		cs, err := kam.Contacts(ctx, number)
		return err == nil && len(cs) == 1
	})
	c.subscribe(sink, regID, "tok")

	kam.Stop()
	ev := sink.WaitEvents(1, 25*time.Second)[0]
	var data map[string]any
	_ = json.Unmarshal(ev.Data, &data)
	if ev.Type != typeEnds || data["registrationId"] != regID || data["terminationReason"] != "NETWORK_TERMINATED" {
		t.Fatalf("event %s %v", ev.Type, data)
	}
}
