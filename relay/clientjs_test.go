package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"callpath/auth"
)

// runner drives client.js from Node: it prints one JSON line per hello and
// per event.
const runner = `import { RelayClient } from "./client.mjs";
const [url, token, deviceId] = process.argv.slice(2);
const c = new RelayClient({ url, token: async () => token, deviceId,
  minBackoffMs: 20, maxBackoffMs: 200, pingIntervalMs: 500, pongTimeoutMs: 2000 });
c.addEventListener("hello", (e) => console.log(JSON.stringify({ kind: "hello", binding: e.detail.bindingId,
  sink: e.detail.sink, token: e.detail.sinkCredential.accessToken })));
c.addEventListener("event", (e) => console.log(JSON.stringify({ kind: "event", id: e.detail.id, seq: e.detail.seq, type: e.detail.event.type })));
c.addEventListener("expired", (e) => console.log(JSON.stringify({ kind: "expired", count: e.detail.count })));
c.start();
`

type jsLine struct {
	Kind    string
	Binding string
	Sink    string
	Token   string
	ID      string
	Seq     int64
	Type    string
}

// The JavaScript client served at /relay/v1/client.js, run by Node (the
// same WebSocket API as browsers): it connects, exposes events, acknowledges
// them, and when its socket is cut without a close frame it reconnects
// with the relay-issued token to the same binding and receives what was
// POSTed meanwhile, in order, without repeats.
func TestJavaScriptClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed (apt-get install nodejs; scripts/deps.sh does): the JavaScript client cannot run")
	}
	var skew atomic.Int64 // moves the access tokens' clock
	f := newFixture(t, func(c *Config) {
		c.Verifier.(*auth.Verifier).Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	res, err := http.Get(f.srv.URL + PathClientJS)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") || !strings.Contains(string(src), "export class RelayClient") {
		t.Fatalf("client.js: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "client.mjs"), src, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "run.mjs"), []byte(runner), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Node 20 has the browsers' WebSocket behind this flag (22: always).
	cmd := exec.CommandContext(ctx, node, "--experimental-websocket", "--no-warnings", "run.mjs", f.wsURL(""), f.token("+4790000200"), "js-device")
	cmd.Dir = dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("node stderr:\n%s", stderr.String())
		}
	})
	lines := make(chan jsLine, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var l jsLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines <- l
			}
		}
		close(lines)
	}()
	next := func(want string) jsLine {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok || l.Kind != want {
				t.Fatalf("client printed %+v (open %v), want %s", l, ok, want)
			}
			return l
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s line from the client", want)
		}
		return jsLine{}
	}
	hello := next("hello")
	sink, cred := hello.Sink, hello.Token
	eventually(t, 5*time.Second, "the binding's session", func() bool { return f.relay.hub.session(hello.Binding) != nil })
	postTo := func(id string) {
		t.Helper()
		if code, body := post(t, sink, cred, cloudEvent(id), nil); code != http.StatusNoContent {
			t.Fatalf("POST %s: %d %s", id, code, body)
		}
	}
	postTo("e1")
	postTo("e2")
	if a, b := next("event"), next("event"); a.ID != "e1" || b.ID != "e2" || b.Seq <= a.Seq || !strings.HasSuffix(a.Type, "session-invitation") {
		t.Fatalf("events %+v %+v", a, b)
	}
	eventually(t, 5*time.Second, "the client's acknowledgements", func() bool { return f.queued(hello.Binding) == 0 })

	// Cut the socket under the client (no close frame, as a network loss
	// does) and post while it is away. Its access token has expired by
	// then: only the relay token can bring it back.
	skew.Store(int64(2 * time.Hour))
	s := f.relay.hub.session(hello.Binding)
	_ = s.conn.NetConn().Close()
	postTo("e3")
	postTo("e4")
	if again := next("hello"); again.Binding != hello.Binding {
		t.Fatalf("reconnected to binding %s, want %s", again.Binding, hello.Binding)
	}
	if a, b := next("event"), next("event"); a.ID != "e3" || b.ID != "e4" {
		t.Fatalf("after the reconnect: %+v %+v", a, b)
	}
	eventually(t, 5*time.Second, "the client's acknowledgements", func() bool { return f.queued(hello.Binding) == 0 })
	if f.metrics.get("connect:accepted") != 2 {
		t.Fatalf("connects %v", f.metrics)
	}
}
