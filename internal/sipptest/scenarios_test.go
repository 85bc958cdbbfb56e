package sipptest

// Checks of the interop scenarios in test/sipp: SIPp loads every one of them,
// and every caller/callee pair passes through a real proxy (Kamailio with
// bench/kamailio/kamailio.cfg, which decrements Max-Forwards and adds
// Record-Route like a well-behaved hop) over UDP and TCP. The callee checks
// for Max-Forwards 69 are also shown to fail a direct call (70).

import (
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	scenarioDir  = "../../test/sipp"
	kamailioConf = "../../bench/kamailio/kamailio.cfg"
)

func scenario(name string) string { return filepath.Join(scenarioDir, name) }

func TestInteropScenariosLoad(t *testing.T) {
	needSIPp(t)
	files, err := filepath.Glob(scenario("*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios in %s (%v)", scenarioDir, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// Well-formed XML (SIPp's own parser is lenient).
			dec := xml.NewDecoder(strings.NewReader(string(data)))
			dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
			for {
				if _, err := dec.Token(); err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("not well-formed XML: %v", err)
				}
			}
			// SIPp loads it: it binds its port only after the scenario is
			// accepted. Callers get -r 0 so that they place no call.
			opts := Options{Scenario: f, Timeout: 10 * time.Second}
			if strings.HasPrefix(filepath.Base(f), "uac_") {
				opts.Remote = "127.0.0.1:9"
				opts.Extra = []string{"-r", "0"}
			}
			p, err := start(testCtx(t), t, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res := p.Stop(); res.ExitCode != ExitOK || res.Created != 0 {
				t.Fatalf("%+v", res)
			}
		})
	}
}

// Without a hop in between the callee sees Max-Forwards 70, not 69: the
// check must fail the call on the callee's side (the caller still succeeds).
func TestInteropUASDetectsMissingHop(t *testing.T) {
	needSIPp(t)
	t.Parallel()
	ctx := testCtx(t)
	uas := Start(ctx, t, Options{Scenario: scenario("uas_basic.xml"), Timeout: 20 * time.Second})
	res := Run(ctx, t, Options{Scenario: scenario("uac_basic.xml"), Remote: uas.Addr(), Timeout: 20 * time.Second})
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	ures, err := uas.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ures.ExitCode != ExitFailed || ures.Failed != 1 || !strings.Contains(ures.ErrorLog, "' 70', with regexp '^ *69 *$'") {
		t.Fatalf("callee should fail on Max-Forwards 70: %+v", ures)
	}
}

func TestInteropThroughKamailio(t *testing.T) {
	needSIPp(t)
	if _, err := exec.LookPath("kamailio"); err != nil {
		t.Fatal("kamailio is required: make deps (Debian package kamailio)")
	}
	pairs := []struct{ uac, uas string }{
		{"uac_basic.xml", "uas_basic.xml"},
		{"uac_callee_bye.xml", "uas_bye.xml"},
		{"uac_cancel.xml", "uas_ring_forever.xml"},
		{"uac_expect_486.xml", "uas_busy.xml"},
		{"uac_reinvite.xml", "uas_reinvite.xml"},
		{"uac_load.xml", "uas_load.xml"},
		{"uac_maxfwd0.xml", ""}, // Kamailio answers 483 itself
	}
	for _, tr := range []string{"udp", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			uasPort := freePortBoth(t)
			kam := startKamailio(t, uasPort)
			for _, pr := range pairs {
				t.Run(strings.TrimSuffix(pr.uac, ".xml"), func(t *testing.T) {
					calls, rate := 1, 0
					if pr.uac == "uac_load.xml" {
						calls, rate = 20, 200
					}
					var uas *Proc
					if pr.uas != "" {
						uas = Start(ctx, t, Options{Scenario: scenario(pr.uas), Transport: tr, Port: uasPort,
							Calls: calls, Timeout: 20 * time.Second})
					}
					res := Run(ctx, t, Options{Scenario: scenario(pr.uac), Remote: kam, Transport: tr,
						Calls: calls, Rate: rate, Timeout: 20 * time.Second})
					if err := res.Err(); err != nil {
						t.Errorf("caller %s: %v", pr.uac, err)
					}
					if uas == nil {
						return
					}
					ures, err := uas.Wait(ctx)
					if err != nil {
						t.Fatalf("callee %s: %v", pr.uas, err)
					}
					if err := ures.Err(); err != nil {
						t.Errorf("callee %s: %v", pr.uas, err)
					}
				})
			}
		})
	}
}

// freePortBoth finds a port free for both UDP and TCP on 127.0.0.1.
func freePortBoth(t *testing.T) int {
	t.Helper()
	for range 50 {
		port, err := FreePort("udp", "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

// startKamailio runs Kamailio in the foreground with the bench configuration,
// forwarding initial requests to 127.0.0.1:downstreamPort, and returns the
// address it listens on (UDP and TCP). It is killed at cleanup.
func startKamailio(t *testing.T, downstreamPort int) string {
	t.Helper()
	port := freePortBoth(t)
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "kamailio.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("kamailio", "-DD", "-E", "-f", kamailioConf,
		"-m", "64", "-M", "8", "-Y", dir, "-w", dir,
		"-A", "KAM_PORT="+strconv.Itoa(port),
		"-A", fmt.Sprintf(`KAM_DOWNSTREAM="sip:127.0.0.1:%d"`, downstreamPort),
		"-A", "KAM_CHILDREN=2")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kamailio: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			data, _ := os.ReadFile(filepath.Join(dir, "kamailio.log"))
			t.Logf("kamailio log:\n%s", data)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		u, _ := portBound("udp", "127.0.0.1", port)
		tc, _ := portBound("tcp", "127.0.0.1", port)
		if u && tc {
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		}
		select {
		case <-done:
			data, _ := os.ReadFile(filepath.Join(dir, "kamailio.log"))
			t.Fatalf("kamailio exited:\n%s", data)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatal("kamailio did not bind its port within 10 s")
		}
	}
}
