package metrics

import (
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
