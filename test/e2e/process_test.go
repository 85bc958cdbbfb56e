package e2e

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The real gateway process, for tests that must kill and restart it (not
// the in-process app): built once per test binary from ./cmd/callpath.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func callpathBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "callpath-e2e-bin")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "callpath")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/callpath").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err: err, out: string(out)}
		}
	})
	if buildErr != nil {
		t.Fatalf("building callpath: %v", buildErr)
	}
	return binPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// removeBinary deletes the built binary (TestMain, after the tests).
func removeBinary() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

// proc is one running gateway process.
type proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	http string // host:port of its HTTP API
	log  string
	done chan struct{}
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProcess runs the gateway with config file cfg, whose HTTP API
// listens on httpAddr, and waits until it is ready.
func startProcess(t testing.TB, cfg, httpAddr string) *proc {
	t.Helper()
	logPath := cfg + ".log." + strconv.FormatInt(time.Now().UnixNano(), 10)
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(callpathBinary(t), "-config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, http: httpAddr, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("callpath log (%s):\n%s", logPath, data)
		}
	})
	eventually(t, 15*time.Second, "callpath ready", func() bool {
		select {
		case <-p.done:
			data, _ := os.ReadFile(logPath)
			t.Fatalf("callpath exited:\n%s", data)
		default:
		}
		res, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return p
}

// Kill stops the process at once (SIGKILL): nothing is drained or flushed.
func (p *proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}
