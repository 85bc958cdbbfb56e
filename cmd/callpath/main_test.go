package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBadConfigStopsStartupNamingTheKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("sip:\n  no_answer_timeout: forever\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"-config", path}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "sip.no_answer_timeout") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"frobnicate"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "frobnicate") {
		t.Fatalf("unknown command: exit %d, %q", code, stderr.String())
	}
}

func TestConfigCommandPrintsDefaults(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"config"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "no_answer_timeout:") {
		t.Fatalf("exit %d, stdout %q", code, stdout.String())
	}
}

// TestProcessStartsAndStopsOnSIGTERM runs the real binary: it must come up on
// the given config and leave with status 0 on SIGTERM after draining.
func TestProcessStartsAndStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "callpath")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "c.yaml")
	yaml := "sip: {listen: {udp: '127.0.0.1:0', tcp: '127.0.0.1:0'}}\nhttp: {listen: '127.0.0.1:0'}\ngrpc: {listen: '127.0.0.1:0'}\nmedia: {ice_listen: '127.0.0.1:0'}\nstore: {path: '" + filepath.Join(dir, "db", "c.db") + "'}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitLine := func(substr string) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("process ended before %q", substr)
				}
				if strings.Contains(l, substr) {
					return
				}
			case <-deadline:
				t.Fatalf("no log line %q", substr)
			}
		}
	}
	waitLine("callpath started")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLine("draining calls")
	waitLine("callpath stopped")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "db", "c.db")); err != nil {
		t.Fatalf("store file not created: %v", err)
	}
}

// `callpath token` mints with the key file the gateway of the same config
// trusts, and `callpath route explain` plans a call from the same store.
func TestTokenAndRouteExplain(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "callpath.yaml")
	yaml := "store: {path: \"" + filepath.Join(dir, "callpath.db") + "\"}\n" +
		"routing: {default_target: \"sip:core.example.net\"}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"token", "-config", cfg, "-sub", "tas-1", "-phone", "+4790000001"}, &out, &errOut); code != 0 {
		t.Fatalf("token: exit %d: %s", code, errOut.String())
	}
	tok := strings.TrimSpace(out.String())
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("token %q is not a compact JWT", tok)
	}
	if _, err := os.Stat(filepath.Join(dir, "dev-issuer.key")); err != nil {
		t.Fatalf("dev issuer key not beside the store: %v", err)
	}
	if code := run([]string{"token", "-config", cfg}, &out, &errOut); code != 2 {
		t.Fatalf("token without -sub: exit %d", code)
	}

	out.Reset()
	errOut.Reset()
	if code := run([]string{"route", "explain", "-config", cfg, "-from", "+4790000001", "-to", "+4790000002"}, &out, &errOut); code != 0 {
		t.Fatalf("route explain: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"registrations: none apply", "leg 2: INVITE sip:+4790000002@… to sip:core.example.net (destination)", "result: one leg"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("route explain output lacks %q:\n%s", want, out.String())
		}
	}
}
