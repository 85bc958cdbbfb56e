package sipptest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needSIPp(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Fatalf("SIPp is required: make deps (Debian package sip-tester): %v", err)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A caller and a callee, both SIPp, talk directly; both must report every call
// successful, over each transport.
func TestRunPair(t *testing.T) {
	needSIPp(t)
	for _, tr := range []string{"udp", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			uas := Start(ctx, t, Options{Scenario: "testdata/uas_selftest.xml", Transport: tr, Calls: 3, Timeout: 20 * time.Second})
			if !strings.HasPrefix(uas.Addr(), "127.0.0.1:") || uas.Port() == 0 {
				t.Fatalf("Addr() = %q", uas.Addr())
			}
			res := Run(ctx, t, Options{Scenario: "testdata/uac_selftest.xml", Remote: uas.Addr(), Transport: tr,
				Calls: 3, Rate: 100, Timeout: 20 * time.Second})
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != ExitOK || res.Successful != 3 || res.Failed != 0 || res.Created != 3 {
				t.Fatalf("caller result = %+v", res)
			}
			if !strings.Contains(res.Screen, "Successful call") {
				t.Errorf("screen lacks the statistics:\n%s", res.Screen)
			}
			ures, err := uas.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := ures.Err(); err != nil {
				t.Fatal(err)
			}
			if ures.Successful != 3 {
				t.Fatalf("callee result = %+v", ures)
			}
		})
	}
}

// A callee that answers 486 fails the caller that wants a 200: exit code 1,
// one failed call, and the error log names the unexpected response.
func TestFailedCallIsReported(t *testing.T) {
	needSIPp(t)
	t.Parallel()
	ctx := testCtx(t)
	uas := Start(ctx, t, Options{Scenario: "testdata/uas_reject.xml", Timeout: 20 * time.Second})
	res := Run(ctx, t, Options{Scenario: "testdata/uac_selftest.xml", Remote: uas.Addr(), Timeout: 20 * time.Second})
	if res.OK() || res.Err() == nil {
		t.Fatalf("want a failed run, got %+v", res)
	}
	if res.ExitCode != ExitFailed || res.Failed != 1 || res.Successful != 0 {
		t.Fatalf("result = exit %d, %d ok, %d failed", res.ExitCode, res.Successful, res.Failed)
	}
	if !strings.Contains(res.ErrorLog, "486 Busy Here") {
		t.Fatalf("error log does not show the 486:\n%s", res.ErrorLog)
	}
	if !strings.Contains(res.Err().Error(), "486 Busy Here") {
		t.Fatalf("Err() does not carry the error log: %v", res.Err())
	}
}

// A scenario SIPp refuses makes start fail with SIPp's reason.
func TestBadScenarioFailsStart(t *testing.T) {
	needSIPp(t)
	t.Parallel()
	p, err := start(testCtx(t), t, Options{Scenario: "testdata/bad_scenario.xml", Timeout: 10 * time.Second})
	if err == nil {
		t.Fatal("start accepted a broken scenario")
	}
	if !strings.Contains(err.Error(), "never_used") {
		t.Fatalf("error does not name the problem: %v", err)
	}
	if res := p.collect(); res.ExitCode != ExitFailed || res.Created != 0 {
		t.Fatalf("result = %+v", res)
	}
}

// Wait gives up at Options.Timeout, stops SIPp and still returns its statistics.
func TestWaitTimeoutStopsSIPp(t *testing.T) {
	needSIPp(t)
	t.Parallel()
	ctx := testCtx(t)
	uas := Start(ctx, t, Options{Scenario: "testdata/uas_selftest.xml", Timeout: 300 * time.Millisecond})
	begin := time.Now()
	res, err := uas.Wait(ctx)
	if err == nil {
		t.Fatal("Wait returned no error for a callee that never got its call")
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Fatalf("Wait took %v", took)
	}
	// Stopped: SIPp exits 0 when no call failed, even with no call at all.
	if !res.Stopped || res.OK() || res.ExitCode != ExitOK || res.Created != 0 || res.Successful != 0 {
		t.Fatalf("result = %+v", res)
	}
	if bound, _ := portBound("udp", "127.0.0.1", uas.Port()); bound {
		t.Fatal("port still bound after Wait")
	}
}

// Cancelling the context stops a running SIPp the same way.
func TestStopAndContext(t *testing.T) {
	needSIPp(t)
	t.Parallel()
	ctx := testCtx(t)
	uas := Start(ctx, t, Options{Scenario: "testdata/uas_selftest.xml", Transport: "tcp"})
	if res := uas.Stop(); !res.Stopped || res.OK() || res.Err() == nil {
		t.Fatalf("Stop: %+v", res)
	}

	cctx, cancel := context.WithCancel(ctx)
	uas2 := Start(cctx, t, Options{Scenario: "testdata/uas_selftest.xml"})
	cancel()
	if _, err := uas2.Wait(cctx); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("Wait after cancel: %v", err)
	}
}

func TestParseStatFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stat.csv")
	data := "StartTime;TotalCallCreated;CurrentCall;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);\n" +
		"2026-01-01\t10:00:00.000000\t1;5;0;5;5;0;0;\n" +
		"2026-01-01\t10:00:01.000000\t1;9;0;3;8;1;1;\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := ParseStatFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Created != 9 || st.Successful != 8 || st.Failed != 1 || st.Fields["CurrentCall"] != "0" {
		t.Fatalf("stats = %+v", st)
	}
	if _, err := ParseStatFile(filepath.Join(dir, "missing.csv")); err == nil {
		t.Fatal("no error for a missing file")
	}
}

func TestParseScreenCounters(t *testing.T) {
	screen := `  Incoming calls created |        0                  |        0
  Outgoing calls created |        0                  |        7
  Total Calls created    |                           |        7
  Successful call        |        0                  |        6
  Failed call            |        1                  |        1
`
	c, ok, f, found := parseScreenCounters(screen)
	if !found || c != 7 || ok != 6 || f != 1 {
		t.Fatalf("got created %d ok %d failed %d found %v", c, ok, f, found)
	}
}

func TestBuildArgs(t *testing.T) {
	o := withDefaults(Options{Scenario: "x.xml", Remote: "127.0.0.1:5060", Transport: "TCP", Port: 5070, Rate: 5,
		Extra: []string{"-d", "100"}, Timeout: 5 * time.Second})
	got := strings.Join(buildArgs(o, "/s/x.xml", "/d"), " ")
	for _, want := range []string{"127.0.0.1:5060 -sf /s/x.xml -t t1 -i 127.0.0.1 -mi 127.0.0.1 -ci 127.0.0.1 -p 5070 -m 1 ",
		"-timeout 15s", "-r 5 -d 100", "-trace_err -error_file /d/errors.log"} {
		if !strings.Contains(got, want) {
			t.Errorf("args %q lack %q", got, want)
		}
	}
	if strings.Contains(strings.Join(buildArgs(withDefaults(Options{}), "/s", "/d"), " "), " -r ") {
		t.Error("-r given without a rate")
	}
}
