package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"callpath/auth"
	"callpath/camara"
	"callpath/relay"
)

const typeInvite = "org.camaraproject.webrtc-events.v0.session-invitation"

// relaySinksConfig lets the gateway's deliverer POST to a relay on
// loopback over plain HTTP, and retry quickly.
const relaySinksConfig = `camara:
  sinks: {allow_http_hosts: ["127.0.0.1"], allow_cidrs: ["127.0.0.0/8"]}
  delivery: {retry_min: 50ms, retry_max: 200ms}
`

// relayApp is a device app on the relay: a real gorilla WebSocket client.
type relayApp struct {
	t        *testing.T
	url      string // ws://host:port/relay/v1/connect
	token    string
	deviceID string
	conn     *websocket.Conn
	hello    relay.Hello
}

// connect opens the app's socket (with its relay token once it has one)
// and reads the hello.
func (a *relayApp) connect() {
	a.t.Helper()
	u, token := a.url+"?deviceId="+url.QueryEscape(a.deviceID), a.token
	if a.hello.RelayToken != "" {
		u, token = a.url, a.hello.RelayToken
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{relay.Subprotocol}}
	conn, res, err := d.Dial(u, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		code := 0
		if res != nil {
			code = res.StatusCode
		}
		a.t.Fatalf("relay connect: %v (%d)", err, code)
	}
	a.t.Cleanup(func() { _ = conn.Close() })
	a.conn = conn
	if err := json.Unmarshal(a.read(), &a.hello); err != nil || a.hello.Type != relay.TypeHello {
		a.t.Fatalf("hello: %+v %v", a.hello, err)
	}
}

func (a *relayApp) read() []byte {
	a.t.Helper()
	_ = a.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, data, err := a.conn.ReadMessage()
	if err != nil {
		a.t.Fatalf("relay read: %v", err)
	}
	return data
}

// invitation is an event as the app sees it.
type invitation struct {
	seq  int64
	n    int // the data's n: the order the gateway published in
	ce   camara.CloudEvent
	data map[string]any
}

// next reads the next event message.
func (a *relayApp) next() invitation {
	a.t.Helper()
	var m relay.EventMessage
	if err := json.Unmarshal(a.read(), &m); err != nil || m.Type != relay.TypeEvent {
		a.t.Fatalf("event message %+v %v", m, err)
	}
	inv := invitation{seq: m.Seq}
	if err := json.Unmarshal(m.Event, &inv.ce); err != nil {
		a.t.Fatalf("CloudEvent %s: %v", m.Event, err)
	}
	inv.data, _ = inv.ce.Data.(map[string]any)
	n, _ := inv.data["n"].(float64)
	inv.n = int(n)
	if m.ID != inv.ce.ID {
		a.t.Fatalf("message id %s, CloudEvent id %s", m.ID, inv.ce.ID)
	}
	return inv
}

// expect reads events and requires their n to be want, in order.
func (a *relayApp) expect(want ...int) []invitation {
	a.t.Helper()
	var got []invitation
	for range want {
		got = append(got, a.next())
	}
	for i, inv := range got {
		if inv.n != want[i] || inv.ce.Type != typeInvite || (i > 0 && inv.seq <= got[i-1].seq) {
			a.t.Fatalf("event %d: n=%d type=%s seq=%d, want n=%d in seq order (all: %v)", i, inv.n, inv.ce.Type, inv.seq, want[i], ns(got))
		}
	}
	return got
}

func ns(invs []invitation) []int {
	out := make([]int, len(invs))
	for i, inv := range invs {
		out[i] = inv.n
	}
	return out
}

func (a *relayApp) ack(seq int64) {
	a.t.Helper()
	if err := a.conn.WriteJSON(relay.ClientMessage{Type: relay.TypeAck, Seq: seq}); err != nil {
		a.t.Fatalf("ack: %v", err)
	}
}

// subscribeViaRelay registers the app's device with the gateway's CAMARA
// API and subscribes to session-invitation at the relay's sink with the
// relay's sink credential, as an app would with its hello.
func subscribeViaRelay(t *testing.T, c *camaraClient, app *relayApp) {
	t.Helper()
	regID := c.register(app.deviceID, time.Time{})
	code, out := c.do("POST", eventsBase+"/subscriptions", map[string]any{
		"protocol": "HTTP", "sink": app.hello.Sink, "types": []string{typeInvite},
		"sinkCredential": app.hello.SinkCredential,
		"config":         map[string]any{"subscriptionDetail": map[string]any{"registrationId": regID}},
	})
	if code != http.StatusCreated {
		t.Fatalf("subscribe at the relay's sink: %d %v", code, out)
	}
}

// userToken is a subscriber's token for registering, subscribing to
// session-invitation and connecting to the relay.
func userToken(t *testing.T, issuer *auth.DevIssuer, number string) string {
	t.Helper()
	tok, err := issuer.Mint(auth.Token{Subject: "app-" + number, PhoneNumber: number, TTL: time.Hour, Scopes: []string{
		"webrtc-registration:sessions:create", camara.CreateScope(typeInvite), "webrtc-events:read"}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// publish makes the gateway publish session-invitations n..m to number (what
// an incoming call to the device does) and waits until its deliverer has
// handed every one to its sink: the outbox is empty, none dead.
func publish(t *testing.T, gw *gateway, number string, from, to int) {
	t.Helper()
	for n := from; n <= to; n++ {
		sent, err := gw.app.PublishEvent(context.Background(), camara.Event{PhoneNumber: number, Type: typeInvite,
			Data: map[string]any{"n": n, "sessionId": fmt.Sprintf("session-%d", n)}})
		if err != nil || sent != 1 {
			t.Fatalf("publish %d: %d subscriptions, %v", n, sent, err)
		}
	}
}

func outboxDrained(t *testing.T, gw *gateway) func() bool {
	return func() bool {
		live, dead, err := gw.app.Store().OutboxDepth(context.Background())
		if err != nil || dead != 0 {
			t.Fatalf("outbox: %d dead letters, %v", dead, err)
		}
		return live == 0
	}
}

// callpath's own notification sender delivers session-invitations through
// the relay embedded in the gateway to a WebSocket client; while the client
// is away the events keep arriving at the sink (the deliverer's outbox
// empties), and when it comes back it receives every one, in order.
func TestRelayEmbeddedDeliversToWebSocket(t *testing.T) {
	gw := startGateway(t, "127.0.0.1:9", relaySinksConfig)
	const number = "+4790000301"
	tok := userToken(t, gw.app.DevIssuer(), number)
	app := &relayApp{t: t, url: "ws://" + gw.app.HTTPAddr() + relay.PathConnect, token: tok, deviceID: "8d7a3a52-0c4e-4f43-9b0f-5d4ab7c1e101"}
	app.connect()
	if app.hello.Sink != "http://"+gw.app.HTTPAddr()+relay.PathSinks+app.hello.BindingID {
		t.Fatalf("sink %s", app.hello.Sink)
	}
	subscribeViaRelay(t, &camaraClient{t: t, base: "http://" + gw.app.HTTPAddr(), token: tok}, app)

	publish(t, gw, number, 1, 1)
	first := app.expect(1)[0]
	if first.data["subscriptionId"] == nil || first.ce.SpecVersion != "1.0" || first.data["sessionId"] != "session-1" {
		t.Fatalf("invitation %+v", first)
	}
	app.ack(first.seq)
	// An ack still in flight when the socket dies may be lost (the kernel
	// drops unread data on a reset), and the event then comes again, as it
	// should; the test wants the ack to have landed before the app drops.
	eventually(t, 5*time.Second, "the relay counts the ack", func() bool {
		return gw.metric(`callpath_relay_events_acked_total`) == "1"
	})

	// The app drops; the events keep coming to its sink.
	_ = app.conn.Close()
	publish(t, gw, number, 2, 6)
	eventually(t, 15*time.Second, "the deliverer handed all five to the relay", outboxDrained(t, gw))
	if got := gw.metric(`callpath_relay_events_queued_total`); got != "6" {
		t.Fatalf("relay queued %q events, want 6", got)
	}

	app.connect() // with its relay token
	got := app.expect(2, 3, 4, 5, 6)
	app.ack(got[len(got)-1].seq)
	eventually(t, 5*time.Second, "the acknowledged events leave the relay's queue", func() bool {
		return gw.metric(`callpath_relay_queued_events`) == "0" && gw.metric(`callpath_relay_events_acked_total`) == "6"
	})
	if gw.metric(`callpath_relay_connections`) != "1" || gw.metric(`callpath_relay_events_delivered_total{path="backlog"}`) != "5" {
		t.Fatalf("relay metrics: connections %s, backlog deliveries %s", gw.metric(`callpath_relay_connections`),
			gw.metric(`callpath_relay_events_delivered_total{path="backlog"}`))
	}
	// The gateway's shutdown closes the socket with 1001.
	if err := gw.app.Shutdown(context.Background(), false, 0); err != nil {
		t.Fatal(err)
	}
	if code := closeCode(t, app.conn); code != websocket.CloseGoingAway {
		t.Fatalf("socket closed with %d at shutdown, want 1001", code)
	}
}

// metricAt returns the value of one series of the /metrics at addr; ""
// when absent.
func metricAt(t *testing.T, addr, series string) string {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimSpace(strings.TrimPrefix(line, series))
		}
	}
	return ""
}

func closeCode(t *testing.T, conn *websocket.Conn) int {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		return 0
	}
}

// relayProc is `callpath relay` running as its own process.
type relayProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// startRelayProcess runs the real binary's relay subcommand on cfg and
// waits until it answers /readyz on addr.
func startRelayProcess(t *testing.T, cfg, addr string) *relayProc {
	t.Helper()
	logPath := cfg + ".log." + strconv.FormatInt(time.Now().UnixNano(), 10)
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(callpathBinary(t), "relay", "-config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &relayProc{t: t, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("relay log (%s):\n%s", logPath, data)
		}
	})
	eventually(t, 15*time.Second, "callpath relay ready", func() bool {
		select {
		case <-p.done:
			data, _ := os.ReadFile(logPath)
			t.Fatalf("callpath relay exited:\n%s", data)
		default:
		}
		res, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return p
}

// signal sends sig and waits for the process to end.
func (p *relayProc) signal(sig syscall.Signal) {
	p.t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.t.Fatalf("callpath relay still running 15 s after %s", sig)
	}
}

// The relay run by an app provider as its own process (`callpath relay`,
// the real binary): the gateway's deliverer sends to it across two
// restarts, a graceful one (SIGTERM: the socket gets 1001) and a crash
// (SIGKILL) while events are unacknowledged and more are sent; the app
// reconnects each time with its relay token and gets every event, in
// order. Nothing is lost: no dead letters, every n arrives.
func TestRelayProcessRestartLosesNothing(t *testing.T) {
	gw := startGateway(t, "127.0.0.1:9", relaySinksConfig)
	const number = "+4790000302"
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cfg := filepath.Join(dir, "relay.yaml")
	// The provider's relay trusts the operator's token issuer (here the
	// gateway's dev issuer key) and has its own store and key.
	yaml := fmt.Sprintf(`log: {level: debug}
store: {path: %q}
auth: {dev_issuer: {enabled: true, key_file: %q}}
relay: {listen: %q, public_url: "http://%s", ping_interval: 1s, pong_timeout: 2s}
`, filepath.Join(dir, "relay.db"), gw.cfg.DevIssuerKeyFile(), addr, addr)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := startRelayProcess(t, cfg, addr)
	tok := userToken(t, gw.app.DevIssuer(), number)
	app := &relayApp{t: t, url: "ws://" + addr + relay.PathConnect, token: tok, deviceID: "8d7a3a52-0c4e-4f43-9b0f-5d4ab7c1e102"}
	app.connect()
	subscribeViaRelay(t, &camaraClient{t: t, base: "http://" + gw.app.HTTPAddr(), token: tok}, app)

	publish(t, gw, number, 1, 3)
	got := app.expect(1, 2, 3)
	app.ack(got[0].seq) // 2 and 3 are received but not acknowledged
	eventually(t, 10*time.Second, "delivered", outboxDrained(t, gw))
	queued := func(n string) func() bool {
		return func() bool { return metricAt(t, addr, "callpath_relay_queued_events") == n }
	}
	// Without this wait the ack might not have been written when the
	// relay stops: the app would get 1 again, which it tells by its id,
	// but this test checks exact sequences.
	eventually(t, 5*time.Second, "the ack of 1 written", queued("2"))

	// Graceful restart: the socket is closed with 1001.
	proc.signal(syscall.SIGTERM)
	if code := closeCode(t, app.conn); code != websocket.CloseGoingAway {
		t.Fatalf("socket closed with %d on SIGTERM, want 1001", code)
	}
	publish(t, gw, number, 4, 5) // the relay is down: the deliverer retries
	proc = startRelayProcess(t, cfg, addr)
	eventually(t, 15*time.Second, "the deliverer's retries reached the restarted relay", outboxDrained(t, gw))
	app.connect()
	got = app.expect(2, 3, 4, 5)
	app.ack(got[1].seq) // through 3
	eventually(t, 5*time.Second, "the ack of 2 and 3 written", queued("2"))

	// Crash: SIGKILL with 4 and 5 unacknowledged, then more events while
	// it is down.
	proc.signal(syscall.SIGKILL)
	publish(t, gw, number, 6, 8)
	startRelayProcess(t, cfg, addr)
	eventually(t, 15*time.Second, "the deliverer's retries reached the restarted relay", outboxDrained(t, gw))
	app.connect()
	got = app.expect(4, 5, 6, 7, 8)
	app.ack(got[len(got)-1].seq)
}
