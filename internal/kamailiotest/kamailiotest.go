// Package kamailiotest runs a real Kamailio 5.6 as a SIP registrar ("the
// telco's registrar") for interop tests of SIP registration clients. The
// configuration is test/kamailio/registrar.cfg; see its header for the
// behaviour. In short:
//
//   - REGISTER is digest-authenticated: 401 with qop="auth" and algorithm
//     MD5 or SHA-256, a new nonce in every challenge, nonce reuse allowed
//     with a growing nc (up to 255), stale=true for an expired nonce or a
//     replayed nc. The password of every user is "pw-" + the digest
//     username (see Password), which must equal the To user.
//   - An Expires below Options.MinExpires is refused with 423 Interval Too
//     Brief and a Min-Expires header; one above Options.MaxExpires is
//     lowered to it. The 200 has no Expires header: each Contact carries
//     its granted ;expires=. Expires 0 removes a contact, "Contact: *" all.
//   - Initial requests for a registered user are relayed to its contact
//     (record-routed INVITEs), 404 otherwise.
//
// The location table is kept in memory and keyed by the user part of the To
// URI alone (usrloc use_domain=0): the AOR of sip:+4790000001@127.0.0.1 is
// "+4790000001" (see AORKey). Contacts, AllContacts and the statistics
// helpers read it over Kamailio's JSON-RPC (jsonrpcs, over a FIFO in the run
// directory); kamcmd works too (Kamcmd, CtlSocket).
package kamailiotest

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
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options configure the registrar. Zero values take the defaults.
type Options struct {
	// Algorithm is the digest algorithm named in the challenges: "MD5"
	// (default) or "SHA-256" (auth module parameter "algorithm").
	Algorithm string
	// MinExpires is the smallest Expires accepted; below it the REGISTER
	// gets 423 with Min-Expires. Default 30.
	MinExpires int
	// MaxExpires is the largest Expires granted; above it the registrar
	// grants MaxExpires. It is also the expiry of a contact registered
	// without any Expires. Default 3600.
	MaxExpires int
	// Realm is the digest realm. Default DefaultRealm.
	Realm string
	// NonceExpire is the lifetime of a nonce in seconds; a REGISTER with an
	// older one gets 401 with stale=true. Default 300 (auth module default).
	NonceExpire int
	// Received makes the registrar store the source address of a REGISTER
	// as the contact's received URI and send requests for the user there
	// (define KAM_RECEIVED), as a registrar with NAT handling does.
	Received bool
	// Children is the number of UDP (and TCP) worker processes. Default 2.
	Children int
	// Debug is Kamailio's log level: 1 errors only, 2 (default) adds one
	// line per REGISTER and routed request, 3 is debug.
	Debug int
	// Config is the configuration file. Default: test/kamailio/registrar.cfg
	// of this module.
	Config string
	// StartTimeout bounds the wait for Kamailio to bind its port and answer
	// RPC. Default 15 s.
	StartTimeout time.Duration
}

// DefaultRealm is the realm unless Options.Realm is set.
const DefaultRealm = "callpath.test"

// Password is the password the registrar expects for a digest username:
// "pw-" + username (user +4790000001 has pw-+4790000001).
func Password(username string) string { return "pw-" + username }

// Registrar is a running Kamailio. It is stopped at the test's cleanup.
type Registrar struct {
	opts    Options
	cfg     string
	port    int
	dir     string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}

	rpcSeq  uint64
	writeMu sync.Mutex
}

// Start runs Kamailio with the registrar configuration on a free 127.0.0.1
// port (UDP and TCP) and waits until it answers RPC. It fails the test if
// Kamailio is missing or does not come up, with its log. Kamailio is stopped
// and its run directory removed at cleanup; if the test failed, the log is
// written to t.Log first.
func Start(t testing.TB, opts Options) *Registrar {
	t.Helper()
	r, err := newRegistrar(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("kamailio log (%s):\n%s", r.logPath, r.Log())
		}
		_ = os.RemoveAll(r.dir)
	})
	// A port found free can be taken before Kamailio binds it: try again.
	for attempt := 1; ; attempt++ {
		logged := r.logSize()
		r.port, err = freePortBoth()
		if err == nil {
			err = r.start()
		}
		if err == nil {
			return r
		}
		portTaken := errors.Is(err, errExited) && r.portTakenSince(logged)
		if attempt == 3 || !portTaken {
			t.Fatalf("kamailiotest: %v (kamailio log follows)", err)
		}
		t.Logf("kamailiotest: attempt %d: %v; retrying on another port", attempt, err)
	}
}

func newRegistrar(opts Options) (*Registrar, error) {
	if _, err := exec.LookPath("kamailio"); err != nil {
		return nil, errors.New("kamailiotest: kamailio is not installed (Debian package kamailio: run scripts/deps.sh or make deps)")
	}
	opts = withDefaults(opts)
	switch opts.Algorithm {
	case "MD5", "SHA-256":
	default:
		return nil, fmt.Errorf("kamailiotest: algorithm %q: Kamailio 5.6 knows MD5 and SHA-256", opts.Algorithm)
	}
	if strings.ContainsAny(opts.Realm, `"\`) {
		return nil, fmt.Errorf("kamailiotest: realm %q: no quotes or backslashes", opts.Realm)
	}
	cfg := opts.Config
	if cfg == "" {
		var err error
		if cfg, err = findConfig(); err != nil {
			return nil, err
		}
	}
	// A short directory: unix socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "kamreg")
	if err != nil {
		return nil, fmt.Errorf("kamailiotest: %w", err)
	}
	return &Registrar{opts: opts, cfg: cfg, dir: dir, logPath: filepath.Join(dir, "kamailio.log")}, nil
}

func withDefaults(o Options) Options {
	if o.Algorithm == "" {
		o.Algorithm = "MD5"
	}
	o.Algorithm = strings.ToUpper(o.Algorithm)
	if o.MinExpires == 0 {
		o.MinExpires = 30
	}
	if o.MaxExpires == 0 {
		o.MaxExpires = 3600
	}
	if o.Realm == "" {
		o.Realm = DefaultRealm
	}
	if o.NonceExpire == 0 {
		o.NonceExpire = 300
	}
	if o.Children == 0 {
		o.Children = 2
	}
	if o.Debug == 0 {
		o.Debug = 2
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 15 * time.Second
	}
	return o
}

// findConfig looks for test/kamailio/registrar.cfg in the module root: the
// first directory with a go.mod above the working directory, else above
// this source file.
func findConfig() (string, error) {
	const rel = "test/kamailio/registrar.cfg"
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, d := range starts {
		for {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				p := filepath.Join(d, rel)
				if _, err := os.Stat(p); err == nil {
					return p, nil
				}
				break
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", fmt.Errorf("kamailiotest: %s not found above the working directory; set Options.Config", rel)
}

// args is Kamailio's command line.
func (r *Registrar) args() []string {
	o := r.opts
	args := []string{"-DD", "-E", "-f", r.cfg,
		"-m", "128", "-M", "8", "-Y", r.dir, "-w", r.dir,
		"-A", "KAM_PORT=" + strconv.Itoa(r.port),
		"-A", fmt.Sprintf("KAM_REALM=%q", o.Realm),
		"-A", fmt.Sprintf("KAM_ALGORITHM=%q", o.Algorithm),
		"-A", "KAM_MIN_EXPIRES=" + strconv.Itoa(o.MinExpires),
		"-A", "KAM_MAX_EXPIRES=" + strconv.Itoa(o.MaxExpires),
		"-A", "KAM_NONCE_EXPIRE=" + strconv.Itoa(o.NonceExpire),
		"-A", fmt.Sprintf("KAM_CTL_SOCKET=%q", "unix:"+r.CtlSocket()),
		"-A", fmt.Sprintf("KAM_RPC_FIFO=%q", r.rpcFIFO()),
		"-A", fmt.Sprintf("KAM_RPC_REPLY_DIR=%q", r.dir+"/"),
		"-A", "KAM_CHILDREN=" + strconv.Itoa(o.Children),
		"-A", "KAM_DEBUG=" + strconv.Itoa(o.Debug),
	}
	if o.Received {
		args = append(args, "-A", "KAM_RECEIVED")
	}
	return args
}

var errExited = errors.New("kamailio exited")

// start runs Kamailio on r.port and waits until it is ready.
func (r *Registrar) start() error {
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== kamailio %s\n", strings.Join(r.args(), " "))
	cmd := exec.Command("kamailio", r.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start kamailio: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), r.opts.StartTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		u, _ := portBound("udp", r.port)
		tc, _ := portBound("tcp", r.port)
		if u && tc {
			rctx, rcancel := context.WithTimeout(ctx, time.Second)
			_, err := r.RPC(rctx, "core.version")
			rcancel()
			if err == nil {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%w before it was ready (port %d)", errExited, r.port)
		case <-ctx.Done():
			r.Stop()
			return fmt.Errorf("kamailio not ready on 127.0.0.1:%d (UDP %v, TCP %v) after %v", r.port, u, tc, r.opts.StartTimeout)
		case <-tick.C:
		}
	}
}

// Stop terminates Kamailio (SIGTERM to its process group, SIGKILL after
// 5 s) and waits for it. It is safe to call more than once.
func (r *Registrar) Stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd = nil // once: the group id must not be signalled after it is gone
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
	default:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	// Workers that outlived the main process, if any.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// Restart stops Kamailio and starts it again on the same port with the same
// options: the location table is empty afterwards, as after a registrar
// reboot. It fails the test if Kamailio does not come back.
func (r *Registrar) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	// The sockets' files are left behind by a killed Kamailio.
	_ = os.Remove(r.CtlSocket())
	_ = os.Remove(r.rpcFIFO())
	deadline := time.NewTimer(r.opts.StartTimeout)
	defer deadline.Stop()
	retry := time.NewTicker(100 * time.Millisecond)
	defer retry.Stop()
	for {
		logged := r.logSize()
		err := r.start()
		if err == nil {
			return
		}
		// The port can stay busy for a moment while the old sockets close.
		if !errors.Is(err, errExited) || !r.portTakenSince(logged) {
			t.Fatalf("kamailiotest: restart: %v (kamailio log follows)", err)
		}
		select {
		case <-deadline.C:
			t.Fatalf("kamailiotest: restart: port still taken after %s: %v", r.opts.StartTimeout, err)
		case <-retry.C:
		}
	}
}

func (r *Registrar) logSize() int64 {
	fi, err := os.Stat(r.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// portTakenSince reports whether the log after its first n bytes says that
// Kamailio could not bind its port.
func (r *Registrar) portTakenSince(n int64) bool {
	data, err := os.ReadFile(r.logPath)
	if err != nil || int64(len(data)) < n {
		return false
	}
	return bytes.Contains(data[n:], []byte("Address already in use"))
}

// Exited reports whether Kamailio has exited (crashed or stopped).
func (r *Registrar) Exited() bool {
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Addr is the SIP address, UDP and TCP: "127.0.0.1:port".
func (r *Registrar) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
}

// Port is the SIP port on 127.0.0.1, UDP and TCP.
func (r *Registrar) Port() int { return r.port }

// Host is the registrar's domain: its IP, 127.0.0.1 (no DNS name).
func (r *Registrar) Host() string { return "127.0.0.1" }

// URI is the registrar's SIP URI, the Request-URI of a REGISTER:
// "sip:127.0.0.1:port".
func (r *Registrar) URI() string { return "sip:" + r.Addr() }

// AOR is the address of record of user in this registrar's domain,
// "sip:user@127.0.0.1" (the To URI of its REGISTER).
func (r *Registrar) AOR(user string) string { return "sip:" + user + "@127.0.0.1" }

// Realm is the digest realm of the challenges.
func (r *Registrar) Realm() string { return r.opts.Realm }

// Options are the options in effect, defaults filled in.
func (r *Registrar) Options() Options { return r.opts }

// Dir is Kamailio's run and working directory (log, control sockets).
func (r *Registrar) Dir() string { return r.dir }

// CtlSocket is the path of the binrpc unix socket: kamcmd -s unix:PATH ...
func (r *Registrar) CtlSocket() string { return filepath.Join(r.dir, "ctl") }

func (r *Registrar) rpcFIFO() string { return filepath.Join(r.dir, "rpc.fifo") }

// LogPath is the file Kamailio logs to (stdout and stderr).
func (r *Registrar) LogPath() string { return r.logPath }

// Log is Kamailio's log so far.
func (r *Registrar) Log() string {
	data, err := os.ReadFile(r.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(data)
}

// Kamcmd runs kamcmd against this Kamailio's binrpc socket, e.g.
// Kamcmd(ctx, "ul.dump"), and returns its output. kamcmd reads an argument
// that looks like a number as one: pass "s:+4790000001" for that AOR.
func (r *Registrar) Kamcmd(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "kamcmd", append([]string{"-s", "unix:" + r.CtlSocket()}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kamcmd %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// freePortBoth finds a port that was free for both UDP and TCP on 127.0.0.1
// a moment ago.
func freePortBoth() (int, error) {
	for range 50 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("reserve udp port: %w", err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, errors.New("no port free for both UDP and TCP on 127.0.0.1")
}

// portBound reads /proc/net/{udp,tcp} for a socket bound to 127.0.0.1:port
// or the wildcard address (TCP in LISTEN state), without touching it.
func portBound(transport string, port int) (bool, error) {
	file, state := "/proc/net/udp", ""
	if transport == "tcp" {
		file, state = "/proc/net/tcp", "0A"
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return false, err
	}
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasSuffix(f[1], want) {
			continue
		}
		host := strings.TrimSuffix(f[1], want)
		if host != "0100007F" && host != "00000000" {
			continue
		}
		if state == "" || f[3] == state {
			return true, nil
		}
	}
	return false, nil
}
