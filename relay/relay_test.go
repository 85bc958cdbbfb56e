package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"callpath/auth"
)

// The hello gives a sink on the relay and a CAMARA sink credential; an
// event POSTed there with that credential is answered 204 and arrives on
// the socket as it was sent, and its acknowledgement empties the queue.
func TestHelloSinkAndDelivery(t *testing.T) {
	f := newFixture(t, nil)
	c := f.connect("+4790000001", "dev-1")
	h := c.hello
	if h.Version != ProtocolVersion || h.BindingID == "" || h.DeviceID != "dev-1" ||
		h.Sink != f.srv.URL+PathSinks+h.BindingID || h.AckWindow != DefaultAckWindow {
		t.Fatalf("hello %+v", h)
	}
	cred := h.SinkCredential
	exp, err := time.Parse(time.RFC3339, cred.AccessTokenExpiresUtc)
	if cred.CredentialType != "ACCESSTOKEN" || cred.AccessTokenType != "bearer" || len(cred.AccessToken) < 40 ||
		err != nil || time.Until(exp) < DefaultSinkTokenTTL-time.Minute {
		t.Fatalf("sink credential %+v (%v)", cred, err)
	}
	if h.RelayToken == "" || h.RelayTokenExpiresUtc == "" {
		t.Fatalf("no relay token in %+v", h)
	}

	c.postEvent("ev-1")
	m := c.next(5 * time.Second)
	var got, want any
	_ = json.Unmarshal(m.Event, &got)
	_ = json.Unmarshal(cloudEvent("ev-1"), &want)
	if m.Type != TypeEvent || m.ID != "ev-1" || m.Seq <= 0 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("event message %+v, event %s", m, m.Event)
	}
	if f.queued(h.BindingID) != 1 {
		t.Fatal("the event is not queued until acknowledged")
	}
	c.ack(m.Seq)
	eventually(t, 5*time.Second, "the acknowledged event leaves the queue", func() bool { return f.queued(h.BindingID) == 0 })
	// The event goes down the socket once, pushed live or, when it was
	// queued while the session was still reading its backlog, from there.
	eventually(t, 5*time.Second, "metrics", func() bool {
		return f.metrics.get("queued") == 1 && f.metrics.get("delivered:live")+f.metrics.get("delivered:backlog") == 1 &&
			f.metrics.get("acked") == 1 &&
			f.metrics.get("sink:204") == 1 && f.metrics.get("connect:accepted") == 1
	})
}

// An app that drops and comes back (same token owner and device id) gets
// the same binding and every event it has not acknowledged, in order:
// those sent before it dropped and those POSTed while it was away. after=
// acknowledges on connect.
func TestReconnectResumesInOrder(t *testing.T) {
	f := newFixture(t, nil)
	c := f.connect("+4790000002", "dev-1")
	for i := 1; i <= 3; i++ {
		c.postEvent(fmt.Sprint("e", i))
	}
	first := c.events(3)
	c.ack(first[0].Seq) // e1 done; e2, e3 received but not acknowledged
	eventually(t, 5*time.Second, "ack of e1", func() bool { return f.queued(c.hello.BindingID) == 2 })
	_ = c.conn.Close()
	eventually(t, 5*time.Second, "the socket is gone", func() bool { return f.relay.Connections() == 0 })
	for i := 4; i <= 6; i++ {
		c.postEvent(fmt.Sprint("e", i)) // the old credential still works
	}

	c2 := f.connect("+4790000002", "dev-1")
	if c2.hello.BindingID != c.hello.BindingID || c2.hello.Sink != c.hello.Sink {
		t.Fatalf("reconnect got binding %s, want %s", c2.hello.BindingID, c.hello.BindingID)
	}
	if c2.hello.SinkCredential.AccessToken == c.hello.SinkCredential.AccessToken {
		t.Fatal("every hello should carry a fresh sink credential")
	}
	got := c2.events(5)
	if ids(got) != "e2 e3 e4 e5 e6" {
		t.Fatalf("after reconnect: %s", ids(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("seq not increasing: %d after %d", got[i].Seq, got[i-1].Seq)
		}
	}
	c2.postEvent("e7") // the new credential works too
	if m := c2.next(5 * time.Second); m.ID != "e7" {
		t.Fatalf("live event after the backlog: %s", m.ID)
	}
	_ = c2.conn.Close()
	eventually(t, 5*time.Second, "the socket is gone", func() bool { return f.relay.Connections() == 0 })

	// Resuming after e5 acknowledges e2..e5: only e6 and e7 come.
	c3 := f.connectQuery(f.token("+4790000002"), fmt.Sprintf("deviceId=dev-1&after=%d", got[3].Seq))
	if rest := c3.events(2); ids(rest) != "e6 e7" {
		t.Fatalf("after=%d: %s", got[3].Seq, ids(rest))
	}
	// Another device of the same subscriber is another binding.
	if other := f.connect("+4790000002", "dev-2"); other.hello.BindingID == c.hello.BindingID {
		t.Fatal("another device got the same binding")
	}
}

// The relay-issued token of the hello reconnects to the binding without an
// access token or device id; once the binding is gone it is refused with
// 410.
func TestRelayTokenReconnects(t *testing.T) {
	f := newFixture(t, nil)
	c := f.connect("+4790000003", "dev-1")
	c.postEvent("e1")
	_ = c.conn.Close()
	eventually(t, 5*time.Second, "the socket is gone", func() bool { return f.relay.Connections() == 0 })

	c2 := f.connectQuery(c.hello.RelayToken, "")
	if c2.hello.BindingID != c.hello.BindingID || c2.hello.DeviceID != "dev-1" {
		t.Fatalf("relay token reached %+v", c2.hello)
	}
	if m := c2.next(5 * time.Second); m.ID != "e1" {
		t.Fatalf("backlog %s", m.ID)
	}
	c2.send(ClientMessage{Type: TypeUnbind})
	if code, _ := c2.closeCode(5 * time.Second); code != websocket.CloseNormalClosure {
		t.Fatalf("unbind closed with %d", code)
	}
	_, res, err := f.dial(c.hello.RelayToken, "", nil)
	if err == nil || res == nil || res.StatusCode != http.StatusGone {
		t.Fatalf("relay token of a deleted binding: %v %s", err, describe(res))
	}
	if code, _ := post(t, c.hello.Sink, c.hello.SinkCredential.AccessToken, cloudEvent("late"), nil); code != http.StatusGone {
		t.Fatalf("sink of a deleted binding answered %d, want 410", code)
	}
}

// A second connection for a binding takes it over: the first is closed
// with CloseReplaced and events go to the second.
func TestSecondConnectionTakesOver(t *testing.T) {
	f := newFixture(t, nil)
	first := f.connect("+4790000004", "dev-1")
	second := f.connect("+4790000004", "dev-1")
	if code, _ := first.closeCode(5 * time.Second); code != CloseReplaced {
		t.Fatalf("first socket closed with %d, want %d", code, CloseReplaced)
	}
	second.postEvent("e1")
	if m := second.next(5 * time.Second); m.ID != "e1" {
		t.Fatalf("second socket got %+v", m)
	}
	eventually(t, 5*time.Second, "one socket open", func() bool {
		return f.relay.Connections() == 1 && f.metrics.get("closed:replaced") == 1
	})
}

// Handshakes without a valid token, with a bad device id, from a foreign
// browser origin or without the WebSocket upgrade are refused before the
// upgrade, with a status and a JSON body that says why.
func TestConnectRefusals(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.AllowedOrigins = []string{"https://app.example.com"}
		c.RequiredScope = "relay:use"
	})
	good := f.token("+4790000005", "relay:use")
	stranger, err := auth.LoadOrCreateDevIssuer(filepath.Join(t.TempDir(), "k"), "test-op", "callpath")
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := stranger.Mint(auth.Token{Subject: "x", PhoneNumber: "+4790000005", Scopes: []string{"relay:use"}})
	noScope := f.token("+4790000005")
	for _, c := range []struct {
		name   string
		token  string
		query  string
		header http.Header
		want   int
	}{
		{"no token", "", "deviceId=d", nil, http.StatusUnauthorized},
		{"garbage token", "not-a-jwt", "deviceId=d", nil, http.StatusUnauthorized},
		{"token of another key", forged, "deviceId=d", nil, http.StatusUnauthorized},
		{"sink credential as token", "x" + strings.Repeat("A", 42), "deviceId=d", nil, http.StatusUnauthorized},
		{"missing scope", noScope, "deviceId=d", nil, http.StatusForbidden},
		{"no device id", good, "", nil, http.StatusBadRequest},
		{"bad device id", good, "deviceId=a%20b", nil, http.StatusBadRequest},
		{"long device id", good, "deviceId=" + strings.Repeat("d", 129), nil, http.StatusBadRequest},
		{"bad after", good, "deviceId=d&after=-1", nil, http.StatusBadRequest},
		{"foreign origin", good, "deviceId=d", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, res, err := f.dial(c.token, c.query, c.header)
			if err == nil || res == nil || res.StatusCode != c.want {
				t.Fatalf("got %v %s, want %d", err, describe(res), c.want)
			}
			var body struct {
				Status        int
				Code, Message string
			}
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.Status != c.want || body.Message == "" {
				t.Fatalf("body %+v %v", body, err)
			}
		})
	}
	// The allowed origin, and a browser's token as a subprotocol.
	d := websocket.Dialer{Subprotocols: []string{Subprotocol, BearerPrefix + good}}
	conn, res, err := d.Dial(f.wsURL("deviceId=browser"), http.Header{"Origin": {"https://app.example.com"}})
	if err != nil {
		t.Fatalf("allowed origin with the token as subprotocol: %v %s", err, describe(res))
	}
	defer conn.Close()
	if conn.Subprotocol() != Subprotocol {
		t.Fatalf("selected subprotocol %q", conn.Subprotocol())
	}
	// Plain HTTP to the connect path.
	res, err = http.Get(f.srv.URL + PathConnect)
	if err != nil || res.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET: %v %s", err, describe(res))
	}
	res.Body.Close()
	eventually(t, 5*time.Second, "connect metrics", func() bool {
		return f.metrics.get("connect:unauthenticated") == 4 && f.metrics.get("connect:forbidden") == 2 &&
			f.metrics.get("connect:bad_request") == 5 && f.metrics.get("connect:accepted") == 1
	})
}

// Without allowed origins only the relay's own origin may connect from a
// browser.
func TestSameOriginByDefault(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token("+4790000006")
	if _, res, err := f.dial(tok, "deviceId=d", http.Header{"Origin": {"http://elsewhere.example"}}); err == nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %s", err, describe(res))
	}
	conn, res, err := f.dial(tok, "deviceId=d", http.Header{"Origin": {f.srv.URL}})
	if err != nil {
		t.Fatalf("same origin: %v %s", err, describe(res))
	}
	conn.Close()
}

// Sink requests with the wrong credential, for unknown bindings or with
// malformed CloudEvents are refused with a status and a message; they
// queue nothing, and the good event after them still arrives. Binary mode
// is accepted and arrives in structured form. A retried event is queued
// once.
func TestSinkRefusesBadInputAndLosesNothing(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxEventBytes = 2048 })
	c := f.connect("+4790000007", "dev-1")
	other := f.connect("+4790000008", "dev-1")
	tok := c.hello.SinkCredential.AccessToken
	unknownSink := f.srv.URL + PathSinks + "00000000-0000-0000-0000-000000000000"
	for _, tc := range []struct {
		name   string
		sink   string
		token  string
		body   string
		header http.Header
		want   int
		msg    string
	}{
		{"no credential", c.hello.Sink, "", string(cloudEvent("x")), nil, 401, "bearer"},
		{"wrong credential", c.hello.Sink, "nope", string(cloudEvent("x")), nil, 401, "credential"},
		{"another binding's credential", c.hello.Sink, other.hello.SinkCredential.AccessToken, string(cloudEvent("x")), nil, 401, "credential"},
		{"unknown binding", unknownSink, tok, string(cloudEvent("x")), nil, 410, "no such binding"},
		{"not JSON", c.hello.Sink, tok, `{"specversion":`, nil, 400, "not valid JSON"},
		{"not an object", c.hello.Sink, tok, `["a"]`, nil, 400, "not a JSON object"},
		{"no id", c.hello.Sink, tok, `{"specversion":"1.0","source":"s","type":"t"}`, nil, 400, `"id"`},
		{"id not a string", c.hello.Sink, tok, `{"specversion":"1.0","id":7,"source":"s","type":"t"}`, nil, 400, `"id"`},
		{"old specversion", c.hello.Sink, tok, `{"specversion":"0.3","id":"x","source":"s","type":"t"}`, nil, 400, "specversion"},
		{"not UTF-8", c.hello.Sink, tok, "{\"specversion\":\"1.0\",\"id\":\"x\xff\",\"source\":\"s\",\"type\":\"t\"}", nil, 400, "UTF-8"},
		{"batch", c.hello.Sink, tok, `[]`, http.Header{"Content-Type": {"application/cloudevents-batch+json"}}, 415, "batch"},
		{"XML", c.hello.Sink, tok, `<x/>`, http.Header{"Content-Type": {"application/xml"}}, 415, "Content-Type"},
		{"too large", c.hello.Sink, tok, `{"specversion":"1.0","id":"x","source":"s","type":"t","data":"` + strings.Repeat("a", 4096) + `"}`, nil, 413, "larger"},
		{"binary without ce-id", c.hello.Sink, tok, `{}`, http.Header{"Content-Type": {"application/json"}, "Ce-Specversion": {"1.0"}, "Ce-Source": {"s"}, "Ce-Type": {"t"}}, 400, "ce-id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, tc.sink, tc.token, []byte(tc.body), tc.header)
			var problem struct{ Message string }
			_ = json.Unmarshal([]byte(body), &problem)
			if code != tc.want || !strings.Contains(problem.Message, tc.msg) {
				t.Fatalf("got %d %s, want %d with %q", code, body, tc.want, tc.msg)
			}
		})
	}
	if n := f.queued(c.hello.BindingID); n != 0 {
		t.Fatalf("%d events queued by refused requests", n)
	}
	// GET on a sink.
	res, err := http.Get(c.hello.Sink)
	if err != nil || res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET sink: %v %s", err, describe(res))
	}
	res.Body.Close()

	// Binary mode, and a retry of the same event.
	bin := http.Header{"Content-Type": {"application/json"}, "Ce-Specversion": {"1.0"}, "Ce-Id": {"bin-1"},
		"Ce-Source": {"urn:test"}, "Ce-Type": {"t"}, "Ce-Subject": {"caf%C3%A9"}}
	for range 2 {
		if code, body := post(t, c.hello.Sink, tok, []byte(`{"k":1}`), bin); code != http.StatusNoContent {
			t.Fatalf("binary mode: %d %s", code, body)
		}
	}
	c.postEvent("good")
	got := c.events(2)
	if ids(got) != "bin-1 good" {
		t.Fatalf("delivered %s", ids(got))
	}
	var ev map[string]any
	if err := json.Unmarshal(got[0].Event, &ev); err != nil || ev["subject"] != "café" || ev["datacontenttype"] != "application/json" ||
		fmt.Sprint(ev["data"]) != "map[k:1]" || ev["specversion"] != "1.0" {
		t.Fatalf("binary event as structured: %s (%v)", got[0].Event, err)
	}
	if f.metrics.get("queued") != 2 {
		t.Fatalf("queued %d, want 2 (the retry is not queued again)", f.metrics.get("queued"))
	}
}

// Frames the protocol does not allow close the socket with the matching
// code; events waiting for that binding stay queued for the next socket.
func TestBadFramesCloseTheSocket(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxMessageBytes = 256 })
	for _, tc := range []struct {
		name string
		kind int
		data string
		want int
	}{
		{"oversize", websocket.TextMessage, `{"type":"ack","id":"` + strings.Repeat("x", 300) + `"}`, websocket.CloseMessageTooBig},
		{"binary", websocket.BinaryMessage, `{"type":"ping"}`, websocket.CloseUnsupportedData},
		{"not JSON", websocket.TextMessage, `ack 5`, websocket.ClosePolicyViolation},
		{"unknown type", websocket.TextMessage, `{"type":"subscribe"}`, websocket.ClosePolicyViolation},
		{"ack of nothing", websocket.TextMessage, `{"type":"ack"}`, websocket.ClosePolicyViolation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := f.connect("+4790000009", "dev-"+strings.ReplaceAll(tc.name, " ", "-"))
			c.postEvent("kept")
			if m := c.next(5 * time.Second); m.ID != "kept" {
				t.Fatalf("event %+v", m)
			}
			if err := c.conn.WriteMessage(tc.kind, []byte(tc.data)); err != nil {
				t.Fatal(err)
			}
			if code, text := c.closeCode(5 * time.Second); code != tc.want {
				t.Fatalf("closed with %d %q, want %d", code, text, tc.want)
			}
			if f.queued(c.hello.BindingID) != 1 {
				t.Fatal("the unacknowledged event left the queue")
			}
		})
	}
	eventually(t, 5*time.Second, "close reasons", func() bool {
		return f.metrics.get("closed:too_big") == 1 && f.metrics.get("closed:protocol_error") == 4
	})
}

// A consumer that stops reading holds up only itself: another binding's
// events keep arriving at once, the stuck socket is closed when a write
// misses the write deadline, and its events stay queued.
func TestSlowConsumerHoldsUpOnlyItself(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.WriteTimeout = 300 * time.Millisecond
		c.AckWindow = 10000
		c.MaxEventBytes = 1 << 20
	})
	slow := f.connect("+4790000010", "slow")
	fast := f.connect("+4790000011", "fast")
	big := strings.Repeat("x", 512<<10)
	posted := 0
	// Fill the slow socket until its writes block and time out: the
	// socket buffers take a few MB before that.
	eventually(t, 30*time.Second, "the slow socket closed on its write deadline", func() bool {
		body := fmt.Sprintf(`{"specversion":"1.0","id":"big-%d","source":"s","type":"t","data":%q}`, posted, big)
		if code, msg := post(t, slow.hello.Sink, slow.hello.SinkCredential.AccessToken, []byte(body), nil); code != http.StatusNoContent {
			t.Fatalf("POST to the slow sink: %d %s", code, msg)
		}
		posted++
		// Meanwhile the fast app gets its events without delay.
		fast.postEvent(fmt.Sprint("f", posted))
		m := fast.next(2 * time.Second)
		if m.ID != fmt.Sprint("f", posted) {
			t.Fatalf("fast app got %s", m.ID)
		}
		fast.ack(m.Seq)
		return f.metrics.get("closed:write_failed") == 1
	})
	if n := f.queued(slow.hello.BindingID); n != posted {
		t.Fatalf("slow binding has %d queued, want all %d", n, posted)
	}
}

// A socket whose app answers nothing (no pong) is closed after
// ping_interval + pong_timeout.
func TestDeadConnectionDetected(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.PingInterval = 50 * time.Millisecond; c.PongTimeout = 50 * time.Millisecond })
	c := f.connect("+4790000012", "dev-1")
	_ = c // never read again: gorilla answers pings only while reading

	eventually(t, 5*time.Second, "the silent socket closed as dead", func() bool {
		return f.metrics.get("closed:dead") == 1 && f.relay.Connections() == 0
	})
	// A reading client answers pings and stays.
	live := f.connect("+4790000012", "dev-2")
	var pings atomic.Int32
	live.conn.SetPingHandler(func(data string) error {
		pings.Add(1)
		return live.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := live.conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	eventually(t, 5*time.Second, "four pings answered", func() bool { return pings.Load() >= 4 })
	if f.relay.Connections() != 1 || f.metrics.get("closed:dead") != 1 {
		t.Fatalf("the live socket was closed: %v", f.metrics)
	}
}

// A full queue answers 429 with Retry-After (reject), or drops its oldest
// event and tells the app (drop_oldest); events older than the maximum age
// are dropped by the sweep, and the app is told at once or, when offline,
// after its next hello.
func TestQueueLimits(t *testing.T) {
	t.Run("reject", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Queue.MaxEvents = 2 })
		c := f.connect("+4790000013", "dev-1")
		_ = c.conn.Close()
		eventually(t, 5*time.Second, "offline", func() bool { return f.relay.Connections() == 0 })
		c.postEvent("e1")
		c.postEvent("e2")
		code, body := post(t, c.hello.Sink, c.hello.SinkCredential.AccessToken, cloudEvent("e3"), nil)
		if code != http.StatusTooManyRequests || !strings.Contains(body, "QUEUE_FULL") {
			t.Fatalf("third event: %d %s", code, body)
		}
		if f.queued(c.hello.BindingID) != 2 {
			t.Fatal("queue changed")
		}
	})
	t.Run("drop oldest and max age", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Queue.MaxEvents = 2; c.Queue.DropOldest = true; c.Queue.MaxAge = time.Hour })
		c := f.connect("+4790000014", "dev-1")
		_ = c.conn.Close()
		eventually(t, 5*time.Second, "offline", func() bool { return f.relay.Connections() == 0 })
		for i := 1; i <= 3; i++ {
			c.postEvent(fmt.Sprint("e", i))
		}
		c2 := f.connect("+4790000014", "dev-1")
		if m := c2.next(5 * time.Second); m.Type != TypeExpired || m.Count != 1 {
			t.Fatalf("after hello: %+v, want expired 1", m)
		}
		got := c2.events(2)
		if ids(got) != "e2 e3" {
			t.Fatalf("kept %s", ids(got))
		}
		c2.ack(got[1].Seq)
		eventually(t, 5*time.Second, "queue empty", func() bool { return f.queued(c.hello.BindingID) == 0 })
		c2.postEvent("old")
		if m := c2.next(5 * time.Second); m.ID != "old" {
			t.Fatalf("got %+v", m)
		}
		// Two hours later the sweep drops it and tells the app.
		f.relay.sweep(context.Background(), time.Now().Add(2*time.Hour))
		if m := c2.next(5 * time.Second); m.Type != TypeExpired || m.Count != 1 {
			t.Fatalf("after the sweep: %+v", m)
		}
		b, err := f.db.RelayBinding(context.Background(), c.hello.BindingID)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "reported", func() bool {
			b, _ = f.db.RelayBinding(context.Background(), c.hello.BindingID)
			return b.ExpiredUnreported == 0
		})
		if f.metrics.get("expired:queue_full") != 1 || f.metrics.get("expired:max_age") != 1 {
			t.Fatalf("expiry metrics %v", f.metrics)
		}
	})
}

// A binding without a socket for binding_idle_ttl is deleted (its sink
// answers 410); one with an open socket is kept.
func TestIdleBindingsExpire(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.BindingIdleTTL = time.Hour })
	idle := f.connect("+4790000015", "idle")
	busy := f.connect("+4790000015", "busy")
	_ = idle.conn.Close()
	eventually(t, 5*time.Second, "one socket", func() bool { return f.relay.Connections() == 1 })
	f.relay.sweep(context.Background(), time.Now().Add(2*time.Hour))
	if code, _ := post(t, idle.hello.Sink, idle.hello.SinkCredential.AccessToken, cloudEvent("x"), nil); code != http.StatusGone {
		t.Fatalf("idle binding's sink: %d, want 410", code)
	}
	busy.postEvent("y")
	if m := busy.next(5 * time.Second); m.ID != "y" {
		t.Fatalf("busy binding got %+v", m)
	}
}

// Shutdown closes every socket with 1001 (going away) and refuses new
// ones with 503.
func TestShutdownClosesGoingAway(t *testing.T) {
	f := newFixture(t, nil)
	a := f.connect("+4790000016", "a")
	b := f.connect("+4790000016", "b")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.relay.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{a, b} {
		if code, _ := c.closeCode(5 * time.Second); code != websocket.CloseGoingAway {
			t.Fatalf("closed with %d, want 1001", code)
		}
	}
	if _, res, err := f.dial(f.token("+4790000016"), "deviceId=c", nil); err == nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("connect during shutdown: %v %s", err, describe(res))
	}
}

// Admissions stop at MaxConnections (503 before the upgrade) and resume
// when a socket closes; an owner's bindings stop at MaxBindingsPerOwner.
func TestAdmissionAndBindingCaps(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxConnections = 2; c.MaxBindingsPerOwner = 3 })
	a := f.connect("+4790000017", "a")
	f.connect("+4790000017", "b")
	_, res, err := f.dial(f.token("+4790000017"), "deviceId=c", nil)
	if err == nil || res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("third socket: %v %s", err, describe(res))
	}
	_ = a.conn.Close()
	eventually(t, 5*time.Second, "a slot frees", func() bool { return f.relay.Connections() == 1 })
	c := f.connect("+4790000017", "c")
	_ = c.conn.Close()
	eventually(t, 5*time.Second, "a slot frees", func() bool { return f.relay.Connections() == 1 })
	// A fourth binding of the owner (a, b, c exist).
	if _, res, err := f.dial(f.token("+4790000017"), "deviceId=d", nil); err == nil || res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth binding: %v %s", err, describe(res))
	}
}

// An expired access token is refused; the relay token of the same app
// still connects (that is what it is for).
func TestExpiredAccessToken(t *testing.T) {
	var later *auth.Verifier
	f := newFixture(t, func(c *Config) {
		later = c.Verifier.(*auth.Verifier)
	})
	c := f.connect("+4790000019", "dev-1")
	later.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } // every access token has expired
	if _, res, err := f.dial(f.token("+4790000019"), "deviceId=dev-1", nil); err == nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("expired token: %v %s", err, describe(res))
	}
	if c2 := f.connectQuery(c.hello.RelayToken, ""); c2.hello.BindingID != c.hello.BindingID {
		t.Fatalf("relay token reached %s", c2.hello.BindingID)
	}
}
