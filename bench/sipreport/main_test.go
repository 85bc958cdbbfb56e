package main

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

const statHead = "StartTime;TotalCallCreated;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);\n"

// step writes one step directory the way sip.sh and SIPp do.
func step(t *testing.T, out, sys string, round, rate, created, ok, failed int, sutTicks string, probe string) {
	dir := filepath.Join(out, sys, "round"+itoa(round), "rate"+itoa(rate))
	write(t, filepath.Join(dir, "step.env"), "system="+sys+"\nround="+itoa(round)+"\nrate="+itoa(rate)+
		"\nstep_s=10\nwindow_s=10\nhz=100\nsut_ticks="+sutTicks+"\nsipp_cpu_s=5\nmachine_busy_ticks=1700\nsut_pss_kib=2048\n")
	write(t, filepath.Join(dir, "uac1_stat.csv"), statHead+"x;1;1;1;0;0;\nx;"+itoa(created-10)+";0;"+itoa(ok-10)+";0;"+itoa(failed)+";\n")
	write(t, filepath.Join(dir, "probe_stat.csv"), statHead+"x;10;0;10;0;0;\n")
	write(t, filepath.Join(dir, "probe_short.csv"), probe)
}

func itoa(n int) string { return strconv.Itoa(n) }

// shortmsg builds a -trace_shortmsg log where call i takes setup[i] ms.
func shortmsg(setup ...float64) string {
	var b strings.Builder
	t := 1795342925.0
	for i, ms := range setup {
		id := strconv.Itoa(i+1) + "-99@127.0.0.1"
		line := func(ts float64, dir, cseq, first string) {
			b.WriteString("2026-11-22\t10:22:05.346012\t")
			b.WriteString(formatFloat(ts))
			b.WriteString("\t" + dir + "\t" + id + "\tCSeq:" + cseq + "\t" + first + "\n")
		}
		line(t, "S", "1 INVITE", "INVITE sip:service@127.0.0.1:5060 SIP/2.0")
		line(t+0.0001, "R", "1 INVITE", "SIP/2.0 100 Trying")
		line(t+ms/1000, "R", "1 INVITE", "SIP/2.0 200 OK")
		line(t+ms/1000+0.5, "R", "1 INVITE", "SIP/2.0 200 OK") // retransmission: not a sample
		line(t+ms/1000+0.001, "S", "1 ACK", "ACK sip:x SIP/2.0")
		line(t+ms/1000+0.002, "R", "2 BYE", "SIP/2.0 200 OK")
		t += 0.01
	}
	return b.String()
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', 6, 64) }

func TestSetupTimesAndPercentiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "probe_short.csv")
	write(t, p, shortmsg(1, 2, 3, 4, 100))
	got := setupTimes(p)
	if len(got) != 5 {
		t.Fatalf("got %d samples: %v", len(got), got)
	}
	if p50 := percentile(got, 50); math.Abs(p50-3) > 0.01 {
		t.Fatalf("p50 = %v", p50)
	}
	if p99 := percentile(got, 99); math.Abs(p99-100) > 0.01 {
		t.Fatalf("p99 = %v", p99)
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Fatal("percentile of nothing is not NaN")
	}
}

func TestSummary(t *testing.T) {
	out := t.TempDir()
	fast := shortmsg(1, 1, 1, 2)
	slow := shortmsg(2, 2, 2, 4)
	// kamailio: sustained up to 4000; callpath up to 2000 and twice the CPU.
	step(t, out, "kamailio", 1, 2000, 20000, 20000, 0, "300", fast)
	step(t, out, "kamailio", 1, 4000, 40000, 40000, 0, "600", fast)
	step(t, out, "kamailio", 1, 6000, 60000, 50000, 10000, "900", fast)
	step(t, out, "callpath", 1, 1000, 10000, 10000, 0, "300", slow)
	step(t, out, "callpath", 1, 2000, 20000, 20000, 0, "600", slow)
	step(t, out, "callpath", 1, 4000, 40000, 39000, 1000, "1200", slow)
	// A step cut short and re-run by sip.sh: ignored.
	step(t, out, "callpath", 1, 8000, 100, 100, 0, "1", slow)
	if err := os.Rename(filepath.Join(out, "callpath/round1/rate8000"), filepath.Join(out, "callpath/round1/rate8000.aborted.1")); err != nil {
		t.Fatal(err)
	}

	steps, err := loadSteps(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 6 {
		t.Fatalf("%d steps", len(steps))
	}
	var b strings.Builder
	writeSummary(&b, steps, 0.1, nil)
	s := b.String()
	for _, want := range []string{
		"| callpath | 2000 | 2.00 / 4.00 | 2.00 / 4.00 (at 1000) | 30.0 | 60 |",
		"| kamailio | 4000 | 1.00 / 2.00 | 1.00 / 2.00 (at 2000) | 15.0 | 60 |",
		"| **callpath / kamailio** | 0.50 | 2.00 / 2.00 | 2.00 / 2.00 | 2.00 | 1.00 |",
		"| kamailio | 6000 | 60000 | 50000 | 10000 | 16.667 |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
}

func TestMedianAndNearest(t *testing.T) {
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Fatalf("median = %v", m)
	}
	cells := map[int]*agg{1000: {}, 2000: {}, 4000: {}}
	if r := nearestRate(cells, 2500); r != 2000 {
		t.Fatalf("nearest = %d", r)
	}
	if r := nearestRate(cells, 0); r != 0 {
		t.Fatalf("nearest(0) = %d", r)
	}
}
