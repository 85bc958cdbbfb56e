package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// Every series follows Prometheus naming conventions (promlint) and is
// namespaced callpath_ (Go and process collectors aside).
func TestSeriesNamesFollowConventions(t *testing.T) {
	r := New()
	r.SIP.CallStarted()
	r.SIP.CallEnded(200)
	r.SIP.CallAnswered(0)
	r.SIP.Request("INVITE", "in")
	r.SIP.Response("INVITE", 180, "out")
	r.SIP.TransactionTimeout("BYE")
	families, err := r.Prometheus().Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(families).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	seen := 0
	for _, f := range families {
		name := f.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		if !strings.HasPrefix(name, Namespace+"_") {
			t.Errorf("%s is not in the %s namespace", name, Namespace)
		}
		seen++
	}
	if seen < 7 {
		t.Fatalf("only %d callpath series gathered", seen)
	}
}

func TestCodeLabelsAreBounded(t *testing.T) {
	r := New()
	if r.SIP.code(486) != "486" || r.SIP.code(-1) != "other" || r.SIP.code(100000) != "other" {
		t.Fatal("code labels")
	}
}

// Gauges read at scrape time show the values of their source then, one per
// label, and a failing source makes the scrape report an error.
func TestGaugesAtScrape(t *testing.T) {
	r := New()
	n := map[string]int{"registered": 3}
	r.Upstream.Registrations([]string{"registered", "failed"}, func() map[string]int { return n })
	var depthErr error
	r.CAMARA.OutboxDepth(func(context.Context) (int, int, error) { return 7, 2, depthErr })
	want := map[string]float64{
		`callpath_upstream_registrations{state="registered"}`: 3, `callpath_upstream_registrations{state="failed"}`: 0,
		`callpath_events_outbox_events{state="live"}`: 7, `callpath_events_outbox_events{state="dead"}`: 2,
	}
	families, err := r.Prometheus().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetGauge() != nil {
				got[f.GetName()+`{`+m.GetLabel()[0].GetName()+`="`+m.GetLabel()[0].GetValue()+`"}`] = m.GetGauge().GetValue()
			}
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	depthErr = errors.New("store closed")
	if _, err := r.Prometheus().Gather(); err == nil {
		t.Error("a failing source went unreported")
	}
}
