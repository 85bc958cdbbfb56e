// Package e2e starts the real gateway in-process (app.New, the constructor
// cmd/callpath uses) on 127.0.0.1:0 and drives it with real SIP user agents.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"callpath/app"
	"callpath/cdr"
	"callpath/conf"
	"callpath/store"
)

// gateway is a running callpath for one test.
type gateway struct {
	t   testing.TB
	app *app.App
	cfg *conf.Config
	log *bytes.Buffer
}

// startGateway runs callpath with every called number routed to target
// ("host:port" of a test phone, or a full SIP URI); extra is YAML merged on top.
func startGateway(t testing.TB, target string, extra string) *gateway {
	t.Helper()
	if !strings.HasPrefix(target, "sip") {
		target = "sip:" + target
	}
	dir := t.TempDir()
	yaml := fmt.Sprintf(`
log: {level: debug}
sip:
  listen: {udp: "127.0.0.1:0", tcp: "127.0.0.1:0"}
  no_answer_timeout: 10s
  timers: {t1: 100ms, t2: 400ms, t4: 500ms}
http: {listen: "127.0.0.1:0"}
grpc: {listen: ""}
store: {path: %q}
shutdown: {drain_timeout: 5s, retry_after: 7s}
media: {ice_listen: "127.0.0.1:0", rtp_listen_ip: "127.0.0.1", rtp_ports: {min: 40000, max: 49999}}
routing:
  routes:
    - {prefix: "", target: %q}
`, filepath.Join(dir, "callpath.db"), target)
	cfg, err := conf.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if extra != "" {
		overlay, err := conf.ParseOver(cfg, []byte(extra))
		if err != nil {
			t.Fatal(err)
		}
		cfg = overlay
	}
	var logBuf bytes.Buffer
	log := app.NewLogger(cfg.Log, &logBuf)
	if testing.Verbose() && os.Getenv("CALLPATH_TEST_LOG") != "" {
		log.SetOutput(io.MultiWriter(&logBuf, os.Stderr))
	}
	log.SetLevel(logrus.DebugLevel)
	// Registered first, so it runs after the shutdown below: a failed
	// test shows the end of the gateway's log (CI keeps nothing else).
	t.Cleanup(func() {
		if t.Failed() {
			out := logBuf.Bytes()
			if len(out) > 64<<10 {
				out = out[len(out)-64<<10:]
			}
			t.Logf("gateway log (last %d bytes):\n%s", len(out), out)
		}
	})
	ctx := context.Background()
	gw, err := app.New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Shutdown(context.Background(), false, 0) })
	return &gateway{t: t, app: gw, cfg: cfg, log: &logBuf}
}

func (g *gateway) udp() string { return g.app.SIPAddr("udp") }
func (g *gateway) tcp() string { return g.app.SIPAddr("tcp") }

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

// cdrs polls the store until n CDRs exist and returns them.
func (g *gateway) cdrs(n int) []cdr.Record {
	g.t.Helper()
	var recs []cdr.Record
	eventually(g.t, 5*time.Second, fmt.Sprintf("%d CDRs", n), func() bool {
		var err error
		recs, err = g.app.Store().ListCDRs(context.Background(), store.CDRFilter{Limit: 100})
		return err == nil && len(recs) >= n
	})
	return recs
}

// metric returns the value of one series line of /metrics, e.g.
// `callpath_call_outcomes_total{code="486"}`; "" when absent.
func (g *gateway) metric(series string) string {
	g.t.Helper()
	res, err := http.Get("http://" + g.app.HTTPAddr() + "/metrics")
	if err != nil {
		g.t.Fatal(err)
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
