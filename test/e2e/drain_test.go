package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"callpath/cdr"
	"callpath/internal/siptest"
	"callpath/store"
)

func TestGracefulDrain(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "")
	caller := siptest.NewPhone(t, "udp")
	dlg, _ := dialAnswered(t, gw, caller, callee, gw.udp())
	_ = dlg

	stopped := make(chan error, 1)
	go func() { stopped <- gw.app.Shutdown(context.Background(), true, 1500*time.Millisecond) }()

	// While draining: not ready, and new calls get 503 with Retry-After.
	eventually(t, 2*time.Second, "readyz 503", func() bool {
		res, err := http.Get("http://" + gw.app.HTTPAddr() + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusServiceUnavailable
	})
	raw := siptest.NewRawUDP(t)
	raw.Send(gw.udp(), rawInvite(raw.Addr(), gw.udp(), "during-drain", 70))
	res := raw.Expect("SIP/2.0 503", 3*time.Second)
	if siptest.Header(res, "Retry-After") != "7" {
		t.Fatalf("503 Retry-After %q, want 7 (shutdown.retry_after)", siptest.Header(res, "Retry-After"))
	}
	callee.NoCall(100 * time.Millisecond)

	// The drain time passes with the call still up: both legs get BYE.
	callee.WaitRequest(5*time.Second, siptest.Method(sip.BYE))
	caller.WaitRequest(5*time.Second, siptest.Method(sip.BYE))
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not return")
	}
	// The CDR was flushed before the store closed.
	db, err := store.Open(context.Background(), gw.cfg.Store.Path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs, err := db.ListCDRs(context.Background(), store.CDRFilter{})
	if err != nil || len(recs) != 1 || recs[0].HangupBy != cdr.HangupGateway || recs[0].Reason != "drain" {
		t.Fatalf("CDRs after drain: %+v %v", recs, err)
	}
}

func TestDrainEndsEarlyWhenCallsEnd(t *testing.T) {
	callee := siptest.NewPhone(t, "udp")
	gw := startGateway(t, callee.Addr, "")
	caller := siptest.NewPhone(t, "udp")
	dlg, _ := dialAnswered(t, gw, caller, callee, gw.udp())

	stopped := make(chan error, 1)
	start := time.Now()
	go func() { stopped <- gw.app.Shutdown(context.Background(), true, 30*time.Second) }()
	eventually(t, 2*time.Second, "draining", func() bool {
		res, err := http.Get("http://" + gw.app.HTTPAddr() + "/readyz")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		return res.StatusCode == http.StatusServiceUnavailable
	})
	// In-dialog requests still flow while draining; the caller hangs up.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("drain did not finish when the last call ended")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("drain took %s although the call ended", took)
	}
	bye := callee.WaitRequest(2*time.Second, siptest.Method(sip.BYE))
	if !strings.Contains(bye.From().Address.Host, "127.0.0.1") {
		t.Fatalf("BYE from %s", bye.From().Address.Host)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	gw := startGateway(t, "127.0.0.1:9", "")
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/nope": 404} {
		res, err := http.Get("http://" + gw.app.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("GET %s = %d, want %d", path, res.StatusCode, want)
		}
	}
	if gw.metric("callpath_calls_active") != "0" {
		t.Fatalf("calls_active = %q", gw.metric("callpath_calls_active"))
	}
}
