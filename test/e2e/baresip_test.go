package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"callpath/internal/mediatest"
)

// baresip is a real SIP phone (Debian's baresip 1.0): it answers every call
// at once, plays a tone file and records what it hears (module sndfile).
// Its quirks are in shared/notes/test-peers.md.
type baresip struct {
	addr string // host:port of its SIP listener
	dir  string // its config; the recordings land in dir/snd
	out  *lockedBuffer
}

// lockedBuffer is a process's output, read by the test while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// printed reports whether baresip has printed text.
func (b *baresip) printed(text string) bool { return strings.Contains(b.out.String(), text) }

// baresipOptions are the ways a test's baresip differs from a plain phone.
type baresipOptions struct {
	dial     string // a URI it calls at once
	mediaenc string // its media encryption ("dtls_srtp"): it offers and wants only that
	codec    string // its one audio codec; PCMU when empty
}

// startBaresip runs baresip answering as number and playing freq Hz.
func startBaresip(t *testing.T, number string, freq float64, opts baresipOptions) *baresip {
	t.Helper()
	bin, err := exec.LookPath("baresip")
	if err != nil {
		t.Fatal("baresip is not installed (apt-get install baresip; scripts/deps.sh does)")
	}
	dir := t.TempDir()
	port := freeUDPPairPort(t)
	b := &baresip{addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, out: &lockedBuffer{}}
	tone := filepath.Join(dir, "tone.wav")
	writeWAV(t, tone, 8000, 60, freq) // it hangs up when the file ends
	if err := os.MkdirAll(filepath.Join(dir, "snd"), 0o700); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`poll_method epoll
sip_listen %s
net_interface 127.0.0.1
audio_player aubridge,nil
audio_alert aubridge,nil
audio_source aufile,%s
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module aubridge.so
module sndfile.so
module dtls_srtp.so
module account.so
module menu.so
snd_path %s
`, b.addr, tone, filepath.Join(dir, "snd"))
	codec := opts.codec
	if codec == "" {
		codec = "PCMU"
	}
	accounts := fmt.Sprintf("<sip:%s@%s>;regint=0;answermode=auto;audio_codecs=%s", number, b.addr, codec)
	if opts.mediaenc != "" {
		accounts += ";mediaenc=" + opts.mediaenc
		// WebRTC-style peers multiplex RTCP: one DTLS association.
		config += "rtcp_mux yes\n"
	}
	accounts += "\n"
	for name, body := range map[string]string{"config": config, "accounts": accounts, "contacts": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"-f", dir}
	if opts.dial != "" {
		args = append(args, "-e", "/dial "+opts.dial)
	}
	cmd := exec.Command(bin, args...)
	out := b.out
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Stdin = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("baresip output:\n%s", out.String())
		}
	})
	eventually(t, 10*time.Second, "baresip listening", func() bool {
		c, err := net.Dial("tcp", b.addr) // it binds TCP on the SIP port too
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
	return b
}

// freeUDPPairPort finds a port for baresip's SIP: free for UDP and TCP,
// with the next two free as well (baresip binds its TLS listener on
// port+1). It is picked below the kernel's ephemeral range (32768 up), so
// the test's own client connections cannot take port+1 between this check
// and baresip's start, as they did when the port came from the ephemeral
// range.
func freeUDPPairPort(t *testing.T) int {
	t.Helper()
	const low, high = 30000, 32760
	for range 200 {
		p := low + rand.IntN(high-low)
		if portsFree(p, p+1, p+2) {
			return p
		}
	}
	t.Fatal("no free port triple below the ephemeral range")
	return 0
}

// portsFree reports whether each port can be bound on 127.0.0.1 for UDP
// and for TCP.
func portsFree(ports ...int) bool {
	for _, q := range ports {
		addr := "127.0.0.1:" + strconv.Itoa(q)
		u, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return false
		}
		_ = u.Close()
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}

// writeWAV writes seconds of a sine of freq Hz, mono 16-bit at rate.
func writeWAV(t *testing.T, path string, rate, seconds int, freq float64) {
	t.Helper()
	n := rate * seconds
	var buf bytes.Buffer
	hdr := []any{[4]byte{'R', 'I', 'F', 'F'}, uint32(36 + 2*n), [8]byte{'W', 'A', 'V', 'E', 'f', 'm', 't', ' '},
		uint32(16), uint16(1), uint16(1), uint32(rate), uint32(rate * 2), uint16(2), uint16(16),
		[4]byte{'d', 'a', 't', 'a'}, uint32(2 * n)}
	for _, v := range hdr {
		_ = binary.Write(&buf, binary.LittleEndian, v)
	}
	for i := range n {
		_ = binary.Write(&buf, binary.LittleEndian, int16(12000*math.Sin(2*math.Pi*freq*float64(i)/float64(rate))))
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// wavSamples reads the 16-bit samples of a WAV file's data chunk.
func wavSamples(path string) ([]int16, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	i := bytes.Index(data, []byte("data"))
	if i < 0 || len(data) < i+8 {
		return nil, fmt.Errorf("%s: no data chunk", path)
	}
	pcm := data[i+8:]
	out := make([]int16, len(pcm)/2)
	for j := range out {
		out[j] = int16(binary.LittleEndian.Uint16(pcm[2*j:]))
	}
	return out, nil
}

// heard reports whether one of baresip's recordings carries freq Hz as
// most of its power in some second of it (its own tone, at another
// frequency, is in the other recording).
func (b *baresip) heard(freq float64) bool {
	files, _ := filepath.Glob(filepath.Join(b.dir, "snd", "*.wav"))
	for _, f := range files {
		pcm, err := wavSamples(f)
		if err != nil {
			continue
		}
		for start := 0; start+8000 <= len(pcm); start += 4000 {
			if mediatest.PowerShare(pcm[start:start+8000], freq, 8000) > 0.5 {
				return true
			}
		}
	}
	return false
}

// The demo page calls a real SIP phone: baresip answers, the browser
// hears baresip's 600 Hz and baresip records the browser's 1 kHz.
func TestBrowserCallsBaresip(t *testing.T) {
	phone := startBaresip(t, bob, 600, baresipOptions{})
	sc := newBrowserSceneTo(t, "sip:"+phone.addr)
	var status string
	sc.run(`callpathDemo.signIn("`+alice+`").then(() => callpathDemo.status)`, &status)
	sc.run(`callpathDemo.call("`+bob+`").then(() => callpathDemo.status)`, &status)
	sc.until("baresip answers", `callpathDemo.status === "Connected"`, 20*time.Second)
	sc.until("the browser hears baresip's 600 Hz", `callpathDemo.hears(600) > 0.5`, 20*time.Second)
	eventually(t, 20*time.Second, "baresip records the browser's 1 kHz", func() bool { return phone.heard(1000) })
	sc.run(`callpathDemo.hangUp().then(() => true)`, new(bool))
}

// baresip calls the browser: the page rings, answers, and the tones cross
// (600 Hz from baresip to the browser, 1 kHz from the browser into
// baresip's recording).
func TestBaresipCallsBrowser(t *testing.T) {
	sc := newBrowserSceneTo(t, "sip:127.0.0.1:9")
	var status string
	sc.run(`callpathDemo.signIn("`+alice+`").then(() => callpathDemo.status)`, &status)
	phone := startBaresip(t, bob, 600, baresipOptions{dial: "sip:" + alice + "@" + sc.gw.udp()})
	sc.until("the page rings", `callpathDemo.status === "Ringing"`, 20*time.Second)
	sc.run(`callpathDemo.answer().then(() => callpathDemo.status)`, &status)
	sc.until("the browser hears baresip's 600 Hz", `callpathDemo.hears(600) > 0.5`, 20*time.Second)
	eventually(t, 20*time.Second, "baresip records the browser's 1 kHz", func() bool { return phone.heard(1000) })
	sc.run(`callpathDemo.hangUp().then(() => true)`, new(bool))
}
