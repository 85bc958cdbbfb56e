// Package sipptest runs SIPp (Debian sip-tester 3.6.x, binary "sipp") as a real
// SIP peer from Go tests: a caller (UAC scenario with Options.Remote set) or a
// callee (UAS scenario, Options.Remote empty) on 127.0.0.1.
//
// Each SIPp runs as a child process in its own process group, with its error
// log, statistics and final screen written to the test's temporary directory;
// t.Cleanup ends the group. Typical use:
//
//	uas := sipptest.Start(ctx, t, sipptest.Options{Scenario: "../../test/sipp/uas_basic.xml"})
//	// route the gateway to uas.Addr() ...
//	res := sipptest.Run(ctx, t, sipptest.Options{Scenario: ".../uac_basic.xml", Remote: gatewayAddr})
//	if err := res.Err(); err != nil { t.Fatal(err) }
//	ures, err := uas.Wait(ctx)
//
// SIPp exit codes: 0 every call succeeded (also when stopped by Stop with no
// failed call, even with no call at all), 1 at least one call failed, or a
// fatal error such as a scenario SIPp refuses (then Created is 0 and Stderr
// says why), 97 global -timeout reached with no successful call, 99 normal
// exit without any call processed, 254/255 could not bind / other fatal error.
// Result.OK therefore also demands at least one successful call.
package sipptest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SIPp exit codes (SIPp's include/defines.h).
const (
	ExitOK         = 0   // no call failed (also after Stop)
	ExitFailed     = 1   // at least one call failed, or a fatal scenario/option error
	ExitInternal   = 97  // internal command, or global timeout without a successful call
	ExitNoCalls    = 99  // normal exit without calls processed
	ExitBindError  = 254 // -2: could not bind a socket
	ExitFatalError = 255 // -1: fatal error (bad scenario, bad option...)
)

const (
	defaultTimeout   = 30 * time.Second
	readyTimeout     = 10 * time.Second
	stopGrace        = 3 * time.Second
	maxLogInResult   = 64 << 10
	sippBinary       = "sipp"
	defaultLocalIP   = "127.0.0.1"
	defaultTransport = "udp"
)

// Options describes one SIPp run.
type Options struct {
	// Scenario is the path of the XML scenario (-sf).
	Scenario string
	// Remote is host:port to send calls to; empty for a callee (UAS).
	Remote string
	// Transport is "udp" (default, -t u1) or "tcp" (-t t1).
	Transport string
	// Calls is the number of calls to process before exiting (-m); default 1.
	Calls int
	// Rate is the call rate in calls per second (-r); 0 keeps SIPp's default (10).
	Rate int
	// Extra arguments appended to the command line, e.g. {"-d", "500", "-s", "1000"}.
	Extra []string
	// LocalIP is the address to bind and to write in Via/Contact/SDP (-i, -mi);
	// default 127.0.0.1.
	LocalIP string
	// Port is the local SIP port (-p); 0 picks a free one.
	Port int
	// Timeout bounds the run: Wait stops SIPp after it, and SIPp is also given
	// -timeout (a little longer) so it ends by itself if the test dies. Default 30 s.
	Timeout time.Duration
}

// Result is what a finished SIPp run reports.
type Result struct {
	// ExitCode is SIPp's exit status (see the Exit* constants).
	ExitCode int
	// Created, Successful and Failed are the cumulative call counters.
	Created, Successful, Failed int
	// ErrorLog is SIPp's error log (-trace_err): unexpected messages, failed
	// checks, timeouts. Empty when nothing went wrong.
	ErrorLog string
	// Screen is SIPp's final statistics screen (-trace_screen), or the tail of
	// its standard output when no screen was written.
	Screen string
	// Stderr is what SIPp wrote to standard error (fatal errors land here).
	Stderr string
	// Stopped is true when SIPp did not end by itself: Stop, or Wait's
	// context or Options.Timeout.
	Stopped bool
	// Dir holds every file of the run (logs, stats, the command line).
	Dir string
}

// OK reports whether SIPp ended by itself with exit code 0, no failed call and
// at least one successful call.
func (r Result) OK() bool {
	return r.ExitCode == ExitOK && r.Failed == 0 && r.Successful > 0 && !r.Stopped
}

// Err is nil when OK, otherwise an error that tells why, with SIPp's error
// log and final screen, for t.Fatal.
func (r Result) Err() error {
	if r.OK() {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "sipp: exit code %d (%s), %d calls created, %d successful, %d failed",
		r.ExitCode, ExitMeaning(r.ExitCode), r.Created, r.Successful, r.Failed)
	if r.Stopped {
		b.WriteString(", stopped before it finished")
	}
	if s := strings.TrimSpace(r.Stderr); s != "" {
		fmt.Fprintf(&b, "\n--- stderr ---\n%s", s)
	}
	if s := strings.TrimSpace(r.ErrorLog); s != "" {
		fmt.Fprintf(&b, "\n--- error log ---\n%s", s)
	}
	if s := strings.TrimSpace(r.Screen); s != "" {
		fmt.Fprintf(&b, "\n--- screen ---\n%s", s)
	}
	if r.Dir != "" {
		fmt.Fprintf(&b, "\n(files in %s)", r.Dir)
	}
	return errors.New(b.String())
}

// ExitMeaning explains a SIPp exit code.
func ExitMeaning(code int) string {
	switch code {
	case ExitOK:
		return "no call failed"
	case ExitFailed:
		return "a call failed, or a fatal error"
	case ExitInternal:
		return "internal command or global timeout"
	case ExitNoCalls:
		return "no call processed"
	case ExitBindError:
		return "could not bind a socket"
	case ExitFatalError:
		return "fatal error"
	case -1:
		return "killed"
	default:
		return "unknown"
	}
}

// Available reports whether the sipp binary is on PATH.
func Available() error {
	if _, err := exec.LookPath(sippBinary); err != nil {
		return fmt.Errorf("sipptest: %s not found on PATH (Debian package sip-tester): %w", sippBinary, err)
	}
	return nil
}

// Proc is a running SIPp.
type Proc struct {
	opts    Options
	addr    string
	dir     string
	cmd     *exec.Cmd
	stdout  *os.File
	stderr  *os.File
	done    chan struct{} // closed when the process has exited
	waitErr error
	started time.Time

	mu      sync.Mutex
	result  *Result
	stopped bool // we signalled it before it ended by itself
}

// Start launches SIPp in the background and returns once it has bound its SIP
// port (so a caller can be pointed at a callee right away); it fails the test
// if SIPp exits first (a scenario SIPp refuses ends it with exit code 1 and a
// message on stderr) or does not bind within 10 s. The process group is
// killed at cleanup.
func Start(ctx context.Context, t testing.TB, opts Options) *Proc {
	t.Helper()
	p, err := start(ctx, t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// start is Start returning the error instead of failing the test.
func start(ctx context.Context, t testing.TB, opts Options) (*Proc, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	opts = withDefaults(opts)
	scenario, err := filepath.Abs(opts.Scenario)
	if err != nil {
		return nil, fmt.Errorf("sipptest: scenario path: %w", err)
	}
	if _, err := os.Stat(scenario); err != nil {
		return nil, fmt.Errorf("sipptest: scenario: %w", err)
	}
	if opts.Port == 0 {
		if opts.Port, err = FreePort(opts.Transport, opts.LocalIP); err != nil {
			return nil, fmt.Errorf("sipptest: %w", err)
		}
	}

	dir := t.TempDir()
	args := buildArgs(opts, scenario, dir)
	p := &Proc{
		opts: opts,
		addr: net.JoinHostPort(opts.LocalIP, strconv.Itoa(opts.Port)),
		dir:  dir,
		done: make(chan struct{}),
	}
	if p.stdout, err = os.Create(filepath.Join(dir, "stdout.log")); err != nil {
		return nil, fmt.Errorf("sipptest: %w", err)
	}
	if p.stderr, err = os.Create(filepath.Join(dir, "stderr.log")); err != nil {
		p.stdout.Close()
		return nil, fmt.Errorf("sipptest: %w", err)
	}
	_ = os.WriteFile(filepath.Join(dir, "cmdline.txt"), []byte(sippBinary+" "+strings.Join(args, " ")+"\n"), 0o644)

	// Not exec.CommandContext: the context must not SIGKILL SIPp before it
	// writes its statistics; Wait and the cleanup stop it themselves.
	cmd := exec.Command(sippBinary, args...)
	cmd.Dir = dir // SIPp writes any file we did not name into its working directory
	cmd.Stdout = p.stdout
	cmd.Stderr = p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // own process group: cleanup kills it whole
		Pdeathsig: syscall.SIGKILL, // and the kernel kills it if the test process dies
	}
	p.cmd = cmd
	if err := cmd.Start(); err != nil {
		p.stdout.Close()
		p.stderr.Close()
		return nil, fmt.Errorf("sipptest: start sipp: %w", err)
	}
	p.started = time.Now()
	go func() {
		p.waitErr = cmd.Wait()
		p.stdout.Close()
		p.stderr.Close()
		close(p.done)
	}()
	t.Cleanup(p.kill)

	if err := p.waitReady(ctx); err != nil {
		res := p.collect()
		return p, fmt.Errorf("sipptest: %s did not come up on %s %s: %v\n%v",
			filepath.Base(scenario), opts.Transport, p.addr, err, res.Err())
	}
	return p, nil
}

// Run starts SIPp and waits for it to finish; it fails the test only if SIPp
// could not be run or had to be stopped (Options.Timeout or ctx). Judge the
// calls with Result.OK / Result.Err.
func Run(ctx context.Context, t testing.TB, opts Options) Result {
	t.Helper()
	p := Start(ctx, t, opts)
	res, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("sipptest: %s: %v\n%v", filepath.Base(opts.Scenario), err, res.Err())
	}
	return res
}

// Addr is the host:port SIPp listens on (route the gateway's calls there).
func (p *Proc) Addr() string { return p.addr }

// Port is the local SIP port.
func (p *Proc) Port() int { return p.opts.Port }

// Dir is the directory holding this run's files.
func (p *Proc) Dir() string { return p.dir }

// Wait waits for SIPp to exit and returns its result. If ctx ends or
// Options.Timeout passes first, SIPp is stopped as by Stop and the error says
// so; the Result is filled in either way. Wait may be called more than once.
func (p *Proc) Wait(ctx context.Context) (Result, error) {
	deadline := p.started.Add(p.opts.Timeout)
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var err error
	select {
	case <-p.done:
	case <-ctx.Done():
		err = fmt.Errorf("stopped sipp: %w", context.Cause(ctx))
		p.stop()
	case <-timer.C:
		err = fmt.Errorf("stopped sipp: still running after %v (Options.Timeout)", p.opts.Timeout)
		p.stop()
	}
	return p.collect(), err
}

// Stop ends SIPp now and returns its result, with Stopped set: SIGUSR1 (SIPp
// stops placing calls and waits for running ones), after 200 ms a second
// SIGUSR1 (running calls are aborted), after 3 more seconds SIGKILL. SIPp
// writes its statistics and exits 0 when no call failed (even with no call at
// all), else 1.
func (p *Proc) Stop() Result {
	p.stop()
	return p.collect()
}

// stop makes SIPp exit and waits for it. SIGUSR1 is SIPp's "q" key: the
// first one stops placing calls and lets running calls finish, a second one
// aborts them; either way SIPp writes its statistics and exits 0 or 1. (Its
// SIGTERM handler calls exit() and stdio from the signal handler and can
// hang.) SIGKILL to the group if it is still there after 3 s.
func (p *Proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	pgid := -p.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGUSR1)
	first := time.NewTimer(200 * time.Millisecond)
	defer first.Stop()
	select {
	case <-p.done:
		return
	case <-first.C:
	}
	// A second signal, once the first was surely taken (pending signals merge).
	_ = syscall.Kill(pgid, syscall.SIGUSR1)
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	select {
	case <-p.done:
	case <-grace.C:
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
	}
}

// kill is the cleanup: whatever is left of the group goes.
func (p *Proc) kill() {
	p.stop()
	// Children SIPp may have forked (exec actions) share the group.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// waitReady polls until the SIP port is bound, the process exits, or 10 s pass.
func (p *Proc) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		bound, err := portBound(p.opts.Transport, p.opts.LocalIP, p.opts.Port)
		if err != nil {
			return nil // no /proc: cannot tell, go on
		}
		if bound {
			return nil
		}
		select {
		case <-p.done:
			if p.waitErr == nil {
				// A quick UAC can finish its calls before the socket is
				// seen (reading /proc/net/tcp is slow on a busy machine):
				// it came up, and its result tells the rest.
				return nil
			}
			return fmt.Errorf("sipp exited (%v)", p.waitErr)
		case <-ctx.Done():
			p.stop()
			return context.Cause(ctx)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			p.stop()
			return fmt.Errorf("port not bound after %v", readyTimeout)
		}
	}
}

// collect builds the Result once the process has exited.
func (p *Proc) collect() Result {
	select {
	case <-p.done:
	default:
		return Result{ExitCode: -1, Dir: p.dir}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.result != nil {
		return *p.result
	}
	r := Result{ExitCode: p.cmd.ProcessState.ExitCode(), Dir: p.dir, Stopped: p.stopped}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.ExitCode = -1
	}
	r.ErrorLog = readCapped(filepath.Join(p.dir, "errors.log"))
	r.Stderr = readCapped(filepath.Join(p.dir, "stderr.log"))
	r.Screen = lastScreen(readCapped(filepath.Join(p.dir, "screen.log")))
	if strings.TrimSpace(r.Screen) == "" {
		r.Screen = lastScreen(readTail(filepath.Join(p.dir, "stdout.log"), maxLogInResult))
	}
	if st, err := ParseStatFile(filepath.Join(p.dir, "stat.csv")); err == nil {
		r.Created, r.Successful, r.Failed = st.Created, st.Successful, st.Failed
	} else if c, s, f, ok := parseScreenCounters(r.Screen); ok {
		r.Created, r.Successful, r.Failed = c, s, f
	}
	p.result = &r
	return r
}

func withDefaults(o Options) Options {
	if o.Transport == "" {
		o.Transport = defaultTransport
	}
	o.Transport = strings.ToLower(o.Transport)
	if o.LocalIP == "" {
		o.LocalIP = defaultLocalIP
	}
	if o.Calls <= 0 {
		o.Calls = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	return o
}

func buildArgs(o Options, scenario, dir string) []string {
	var args []string
	if o.Remote != "" {
		args = append(args, o.Remote)
	}
	tr := "u1"
	if o.Transport == "tcp" {
		tr = "t1"
	}
	// SIPp's own deadline, a little after ours: it ends even if the test dies.
	sippTimeout := int((o.Timeout + 10*time.Second + time.Second - 1) / time.Second)
	args = append(args,
		"-sf", scenario,
		"-t", tr,
		"-i", o.LocalIP,
		"-mi", o.LocalIP,
		"-ci", o.LocalIP, // SIPp's UDP control socket (port 8888 and up), else on all interfaces
		"-p", strconv.Itoa(o.Port),
		"-m", strconv.Itoa(o.Calls),
		"-nostdin",
		"-timeout", strconv.Itoa(sippTimeout)+"s",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-trace_stat", "-stf", filepath.Join(dir, "stat.csv"),
		"-trace_screen", "-screen_file", filepath.Join(dir, "screen.log"),
	)
	if o.Rate > 0 {
		args = append(args, "-r", strconv.Itoa(o.Rate))
	}
	return append(args, o.Extra...)
}

// FreePort returns a port that was free on ip for the transport a moment ago:
// for udp it binds ip:0 over UDP, for tcp it listens on ip:0, reads the port
// and closes the socket.
func FreePort(transport, ip string) (int, error) {
	if transport == "tcp" {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return 0, fmt.Errorf("reserve tcp port: %w", err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	c, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("reserve udp port: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// portBound reads /proc/net/{udp,tcp} for a socket bound to ip:port (TCP in
// LISTEN state). Reading is passive: it cannot race SIPp's own bind.
func portBound(transport, ip string, port int) (bool, error) {
	file, state := "/proc/net/udp", ""
	if transport == "tcp" {
		file, state = "/proc/net/tcp", "0A"
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return false, err
	}
	want := fmt.Sprintf(":%04X", port)
	parsed := net.ParseIP(ip).To4()
	var wantIP string
	if parsed != nil {
		wantIP = fmt.Sprintf("%02X%02X%02X%02X", parsed[3], parsed[2], parsed[1], parsed[0])
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasSuffix(f[1], want) {
			continue
		}
		host := strings.TrimSuffix(f[1], want)
		if wantIP != "" && host != wantIP && host != "00000000" {
			continue
		}
		if state == "" || f[3] == state {
			return true, nil
		}
	}
	return false, nil
}

// Stats are the cumulative counters from SIPp's -trace_stat file.
type Stats struct {
	Created, Successful, Failed int
	// Fields is the whole last line, by column name (e.g. "FailedMaxUDPRetrans(C)").
	Fields map[string]string
}

// ParseStatFile reads the last line of a SIPp -trace_stat CSV (';'-separated,
// header first) and returns the cumulative counters.
func ParseStatFile(path string) (Stats, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Stats{}, err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 2 {
		return Stats{}, fmt.Errorf("%s: no data line", path)
	}
	head := strings.Split(strings.TrimSpace(lines[0]), ";")
	last := strings.Split(strings.TrimSpace(lines[len(lines)-1]), ";")
	st := Stats{Fields: make(map[string]string, len(head))}
	for i, h := range head {
		if h == "" || i >= len(last) {
			continue
		}
		st.Fields[h] = last[i]
	}
	num := func(k string) (int, error) {
		v, ok := st.Fields[k]
		if !ok {
			return 0, fmt.Errorf("%s: no column %s", path, k)
		}
		return strconv.Atoi(strings.TrimSpace(v))
	}
	if st.Created, err = num("TotalCallCreated"); err != nil {
		return st, err
	}
	if st.Successful, err = num("SuccessfulCall(C)"); err != nil {
		return st, err
	}
	if st.Failed, err = num("FailedCall(C)"); err != nil {
		return st, err
	}
	return st, nil
}

// lastScreen keeps the last scenario screen (message counts per step) and
// what follows it (statistics, repartition) of a screen dump.
func lastScreen(s string) string {
	const marker = "------------------------------ Scenario Screen"
	if i := strings.LastIndex(s, marker); i >= 0 {
		// Start from the line holding the marker.
		if j := strings.LastIndex(s[:i], "\n"); j >= 0 {
			return s[j+1:]
		}
		return s[i:]
	}
	return s
}

// parseScreenCounters reads "Successful call", "Failed call" and "Outgoing
// call created"/"Incoming call created" rows (cumulative column) of a screen.
func parseScreenCounters(screen string) (created, ok, failed int, found bool) {
	for _, line := range strings.Split(screen, "\n") {
		cols := strings.Split(line, "|")
		if len(cols) < 3 {
			continue
		}
		name := strings.TrimSpace(cols[0])
		n, err := strconv.Atoi(strings.TrimSpace(cols[2]))
		if err != nil {
			continue
		}
		switch name {
		case "Successful call":
			ok, found = n, true
		case "Failed call":
			failed, found = n, true
		case "Outgoing calls created", "Incoming calls created", "Outgoing call created", "Incoming call created":
			created += n
		}
	}
	return
}

func readCapped(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(data) > maxLogInResult {
		return string(data[:maxLogInResult]) + "\n[... truncated, see " + path + "]"
	}
	return string(data)
}

func readTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := st.Size() - n
	if off < 0 {
		off = 0
	}
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return ""
	}
	return string(buf)
}
