package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
)

// Every media series is reported under callpath_media_ with lint-clean
// names, and the batched calls add up.
func TestMediaSeries(t *testing.T) {
	r := New()
	m := r.Media
	m.SessionStarted("PCMU", "relay")
	m.SessionStarted("opus/PCMU", "transcode")
	m.SessionEnded("PCMU", "relay", "media_timeout")
	m.Packets("sip", "out", 64, 64*172)
	m.Packets("sip", "out", 10, 1720)
	m.Packets("other", "in", 1, 1)
	m.Dropped("sip", "unknown_source", 5)
	m.ReceptionReport("webrtc", 0.02, 3*time.Millisecond)
	m.TranscodeTime("to_sip", 40*time.Microsecond)
	m.TranscodeTime("to_webrtc", 60*time.Microsecond)
	m.SetupFailed("ice_timeout")

	if got := value(t, m.packets.WithLabelValues("sip", "out")); got != 74 {
		t.Errorf("packets sip/out = %v, want 74", got)
	}
	if got := value(t, m.bytes.WithLabelValues("sip", "out")); got != 64*172+1720 {
		t.Errorf("bytes sip/out = %v", got)
	}
	if got := value(t, m.sessionsActive.WithLabelValues("PCMU", "relay")); got != 0 {
		t.Errorf("active PCMU relay sessions = %v, want 0", got)
	}
	if got := value(t, m.sessionsActive.WithLabelValues("opus/PCMU", "transcode")); got != 1 {
		t.Errorf("active transcoded sessions = %v, want 1", got)
	}
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
		if strings.HasPrefix(f.GetName(), Namespace+"_media_") {
			seen++
		}
	}
	if seen != 10 {
		t.Errorf("%d callpath_media_ series families, want 10", seen)
	}
}

// The hot-path calls allocate nothing.
func TestMediaHotPathAllocatesNothing(t *testing.T) {
	m := New().Media
	if a := testing.AllocsPerRun(1000, func() {
		m.Packets("webrtc", "in", 64, 10000)
		m.TranscodeTime("to_webrtc", time.Microsecond)
	}); a != 0 {
		t.Errorf("%v allocations per call", a)
	}
}

// value reads a counter's or gauge's current value.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
