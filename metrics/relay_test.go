package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// The relay's series follow the naming conventions, count what they are
// told, and the depth gauges read their source at scrape time.
func TestRelaySeries(t *testing.T) {
	r := NewRelayRegistry()
	m := NewRelay(r)
	m.ConnectAttempt("accepted")
	m.ConnectionOpened()
	m.ConnectionOpened()
	m.ConnectionClosed("dead")
	m.SinkRequest(204)
	m.Queued()
	m.Delivered("live", 3*time.Millisecond)
	m.Acked(2)
	m.Expired("max_age", 5)
	m.Depth(func(context.Context) (int, int, error) { return 7, 11, nil })

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
	values := map[string]float64{}
	for _, f := range families {
		for _, mm := range f.GetMetric() {
			key := f.GetName()
			for _, l := range mm.GetLabel() {
				key += "{" + l.GetValue() + "}"
			}
			switch {
			case mm.Gauge != nil:
				values[key] = mm.Gauge.GetValue()
			case mm.Counter != nil:
				values[key] = mm.Counter.GetValue()
			case mm.Histogram != nil:
				values[key] = float64(mm.Histogram.GetSampleCount())
			}
		}
	}
	for key, want := range map[string]float64{
		"callpath_relay_connections": 1, "callpath_relay_events_expired_total{max_age}": 5,
		"callpath_relay_delivery_latency_seconds{live}": 1, "callpath_relay_bindings": 7, "callpath_relay_queued_events": 11,
		"callpath_relay_events_acked_total": 2, "callpath_relay_disconnects_total{dead}": 1, "callpath_relay_sink_requests_total{204}": 1,
	} {
		if values[key] != want {
			t.Errorf("%s = %v, want %v", key, values[key], want)
		}
	}
}
