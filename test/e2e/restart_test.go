package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"callpath/auth"
	"callpath/internal/sinktest"
)

// Kill the real gateway process while it delivers (its sink holds the
// first request), start it again on the same store: every event reaches
// the sink, in order; only the one in flight may come twice.
func TestNoEventLostAcrossAKill(t *testing.T) {
	sink := sinktest.Start(t)
	dir := t.TempDir()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := filepath.Join(dir, "callpath.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`log: {level: info}
sip: {listen: {udp: "127.0.0.1:0", tcp: ""}}
http: {listen: %q}
grpc: {listen: ""}
store: {path: %q}
media: {ice_listen: "127.0.0.1:0", rtp_listen_ip: "127.0.0.1"}
`, httpAddr, filepath.Join(dir, "callpath.db"))+camaraConfig(sink)), 0o600); err != nil {
		t.Fatal(err)
	}
	p1 := startProcess(t, cfg, httpAddr)
	// The process made its dev issuer key beside the store; the same key
	// mints the test's tokens.
	issuer, err := auth.LoadOrCreateDevIssuer(filepath.Join(dir, "dev-issuer.key"), "callpath-dev", "callpath")
	if err != nil {
		t.Fatal(err)
	}
	c := newCAMARAClient(t, httpAddr, issuer, "+4790000001")
	regID := c.register("0b6f5f2e-7f5c-4c1e-9a5b-2f4f0e6c7a11", time.Time{})

	const n = 20
	sink.Hold()
	var subs []string
	for i := 0; i < n; i++ {
		subs = append(subs, c.subscribe(sink, regID, "tok"))
	}
	for _, id := range subs { // n subscription-ended events, one sink: in this order
		if code, out := c.do("DELETE", eventsBase+"/subscriptions/"+id, nil); code/100 != 2 {
			t.Fatalf("delete: %d %v", code, out)
		}
	}
	eventually(t, 10*time.Second, "the first delivery in flight", func() bool { return sink.Posts() >= 1 })
	p1.Kill()
	sink.Release()

	p2 := startProcess(t, cfg, httpAddr)
	defer p2.Kill()
	var got []string
	eventually(t, 20*time.Second, "every event delivered", func() bool {
		got = got[:0]
		seen := map[string]bool{}
		for _, ev := range sink.Events() {
			var data map[string]any
			_ = json.Unmarshal(ev.Data, &data)
			id, _ := data["subscriptionId"].(string)
			if ev.Type == typeEnded && !seen[id] {
				seen[id] = true
				got = append(got, id)
			}
		}
		return len(got) == n
	})
	for i := range subs {
		if got[i] != subs[i] {
			t.Fatalf("delivery order %v, want %v", got, subs)
		}
	}
	if dup := len(sink.Events()) - n; dup > 1 {
		t.Errorf("%d duplicates; only the event in flight may repeat", dup)
	}
}
