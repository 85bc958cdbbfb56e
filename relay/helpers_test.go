package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sirupsen/logrus"

	"callpath/auth"
	"callpath/store"
)

// fixture is a relay on a real SQLite store in a temporary directory,
// served by a real HTTP server on 127.0.0.1, with a token issuer.
type fixture struct {
	t       testing.TB
	relay   *Relay
	db      *store.DB
	srv     *httptest.Server
	issuer  *auth.DevIssuer
	metrics *countingMetrics
	stop    context.CancelFunc
	done    chan struct{}
	logs    *bytes.Buffer
}

// Quick timers for tests; mod may change them.
func newFixture(t testing.TB, mod func(*Config)) *fixture {
	t.Helper()
	dir := t.TempDir()
	quiet := logrus.New()
	var logs bytes.Buffer
	quiet.SetOutput(&logs)
	quiet.SetLevel(logrus.DebugLevel)
	log := logrus.NewEntry(quiet)
	db, err := store.Open(context.Background(), filepath.Join(dir, "relay.db"), store.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := auth.LoadOrCreateDevIssuer(filepath.Join(dir, "op.key"), "test-op", "callpath")
	if err != nil {
		t.Fatal(err)
	}
	relayKey, err := auth.LoadOrCreateDevIssuer(filepath.Join(dir, "relay.key"), RelayIssuer, RelayAudience)
	if err != nil {
		t.Fatal(err)
	}
	m := newCountingMetrics()
	cfg := Config{
		Store:         db,
		Verifier:      &auth.Verifier{Issuer: "test-op", Audience: "callpath", Keys: issuer.Keys()},
		BindingTokens: NewBindingTokens(relayKey, time.Hour),
		PingInterval:  time.Minute, PongTimeout: time.Minute, WriteTimeout: 2 * time.Second,
		SweepInterval: time.Hour, AckFlushInterval: time.Millisecond,
		Metrics: m, Logger: log,
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	f := &fixture{t: t, relay: r, db: db, srv: srv, issuer: issuer, metrics: m, stop: cancel, done: make(chan struct{}), logs: &logs}
	go func() { defer close(f.done); _ = r.Run(ctx) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = r.Shutdown(sctx)
		cancel()
		<-f.done
		srv.Close()
		_ = db.Close()
		if t.Failed() {
			t.Logf("relay log:\n%s", logs.String())
		}
	})
	return f
}

// token mints an access token for a subscriber.
func (f *fixture) token(phone string, scopes ...string) string {
	f.t.Helper()
	tok, err := f.issuer.Mint(auth.Token{Subject: "app-" + phone, PhoneNumber: phone, Scopes: scopes, TTL: time.Hour})
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

func (f *fixture) wsURL(query string) string {
	u := "ws" + strings.TrimPrefix(f.srv.URL, "http") + PathConnect
	if query != "" {
		u += "?" + query
	}
	return u
}

// dial opens a WebSocket with token in the Authorization header.
func (f *fixture) dial(token, query string, header http.Header) (*websocket.Conn, *http.Response, error) {
	if header == nil {
		header = http.Header{}
	}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{Subprotocol}}
	return d.Dial(f.wsURL(query), header)
}

// client is an app's socket with its hello.
type client struct {
	t     testing.TB
	conn  *websocket.Conn
	hello Hello
}

// connect opens a socket for phone's device and reads the hello.
func (f *fixture) connect(phone, device string) *client {
	f.t.Helper()
	return f.connectQuery(f.token(phone), "deviceId="+url.QueryEscape(device))
}

func (f *fixture) connectQuery(token, query string) *client {
	f.t.Helper()
	conn, res, err := f.dial(token, query, nil)
	if err != nil {
		f.t.Fatalf("dial: %v (%s)", err, describe(res))
	}
	f.t.Cleanup(func() { _ = conn.Close() })
	c := &client{t: f.t, conn: conn}
	if conn.Subprotocol() != Subprotocol {
		f.t.Fatalf("subprotocol %q", conn.Subprotocol())
	}
	raw := c.read(5 * time.Second)
	if err := json.Unmarshal(raw, &c.hello); err != nil || c.hello.Type != TypeHello {
		f.t.Fatalf("first message %s: %v", raw, err)
	}
	return c
}

func describe(res *http.Response) string {
	if res == nil {
		return "no response"
	}
	body, _ := io.ReadAll(res.Body)
	return fmt.Sprintf("%d %s", res.StatusCode, body)
}

// read returns the next text message within timeout.
func (c *client) read(timeout time.Duration) []byte {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	kind, data, err := c.conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if kind != websocket.TextMessage {
		c.t.Fatalf("message kind %d", kind)
	}
	return data
}

// next reads the next message as an EventMessage.
func (c *client) next(timeout time.Duration) EventMessage {
	c.t.Helper()
	var m EventMessage
	raw := c.read(timeout)
	if err := json.Unmarshal(raw, &m); err != nil {
		c.t.Fatalf("message %s: %v", raw, err)
	}
	return m
}

// events reads n event messages and returns their ids in order.
func (c *client) events(n int) []EventMessage {
	c.t.Helper()
	out := make([]EventMessage, 0, n)
	for len(out) < n {
		m := c.next(5 * time.Second)
		if m.Type != TypeEvent {
			c.t.Fatalf("got %s message, want event %d of %d", m.Type, len(out)+1, n)
		}
		out = append(out, m)
	}
	return out
}

func (c *client) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) ack(seq int64) { c.send(ClientMessage{Type: TypeAck, Seq: seq}) }

// closeCode reads until the socket ends and returns the close code the
// relay sent (0: closed without a close frame).
func (c *client) closeCode(timeout time.Duration) (int, string) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		_, _, err := c.conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Text
		}
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("socket still open after %s", timeout)
		}
		return 0, err.Error()
	}
}

// cloudEvent is a structured-mode CloudEvent.
func cloudEvent(id string) []byte {
	return []byte(`{"specversion":"1.0","id":"` + id + `","source":"urn:test","type":"org.camaraproject.webrtc-events.v0.session-invitation","time":"2026-11-22T12:00:00Z","datacontenttype":"application/json","data":{"n":"` + id + `"}}`)
}

// post sends body to a sink with the sink token; it returns the status
// and the body of the answer.
func post(t testing.TB, sink, token string, body []byte, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, sink, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// postEvent POSTs one event to c's sink and requires 204.
func (c *client) postEvent(id string) {
	c.t.Helper()
	if code, body := post(c.t, c.hello.Sink, c.hello.SinkCredential.AccessToken, cloudEvent(id), nil); code != http.StatusNoContent {
		c.t.Fatalf("POST %s: %d %s", id, code, body)
	}
}

// eventually polls cond every few milliseconds until it holds or the
// deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

// queued is the number of events in a binding's queue.
func (f *fixture) queued(binding string) int {
	f.t.Helper()
	evs, err := f.db.RelayEvents(context.Background(), binding, 0, 100000)
	if err != nil {
		f.t.Fatal(err)
	}
	return len(evs)
}

func ids(ms []EventMessage) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.ID
	}
	return strings.Join(s, " ")
}

// countingMetrics records what the relay reports (a fake of the relay's
// own Metrics interface).
type countingMetrics struct {
	mu     sync.Mutex
	counts map[string]int
}

func newCountingMetrics() *countingMetrics { return &countingMetrics{counts: map[string]int{}} }

func (m *countingMetrics) add(key string, n int) {
	m.mu.Lock()
	m.counts[key] += n
	m.mu.Unlock()
}

func (m *countingMetrics) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprint(m.counts)
}

func (m *countingMetrics) get(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[key]
}

func (m *countingMetrics) ConnectAttempt(result string)   { m.add("connect:"+result, 1) }
func (m *countingMetrics) ConnectionOpened()              { m.add("open", 1) }
func (m *countingMetrics) ConnectionClosed(reason string) { m.add("closed:"+reason, 1) }
func (m *countingMetrics) SinkRequest(code int)           { m.add(fmt.Sprint("sink:", code), 1) }
func (m *countingMetrics) Queued()                        { m.add("queued", 1) }
func (m *countingMetrics) Delivered(path string, _ time.Duration) {
	m.add("delivered:"+path, 1)
}
func (m *countingMetrics) Acked(n int)                  { m.add("acked", n) }
func (m *countingMetrics) Expired(reason string, n int) { m.add("expired:"+reason, n) }
