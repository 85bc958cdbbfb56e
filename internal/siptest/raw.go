package siptest

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RawUDP is a bare UDP socket for sending hand-written SIP (malformed input,
// exact header checks) and reading what comes back.
type RawUDP struct {
	t    testing.TB
	Conn *net.UDPConn
}

// NewRawUDP opens a socket on 127.0.0.1:0.
func NewRawUDP(t testing.TB) *RawUDP {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &RawUDP{t: t, Conn: c}
}

// Addr is the socket's host:port, for Via and Contact of hand-written messages.
func (r *RawUDP) Addr() string { return r.Conn.LocalAddr().String() }

// Send writes msg (LF line ends are turned into CRLF) to addr.
func (r *RawUDP) Send(addr, msg string) {
	r.t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		r.t.Fatal(err)
	}
	msg = strings.ReplaceAll(strings.ReplaceAll(msg, "\r\n", "\n"), "\n", "\r\n")
	if _, err := r.Conn.WriteToUDP([]byte(msg), ua); err != nil {
		r.t.Fatal(err)
	}
}

// SendBytes writes raw bytes unchanged.
func (r *RawUDP) SendBytes(addr string, b []byte) {
	r.t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.Conn.WriteToUDP(b, ua); err != nil {
		r.t.Fatal(err)
	}
}

// Expect reads datagrams until one starts with prefix (e.g. "SIP/2.0 483"),
// and returns it; it fails the test after timeout.
func (r *RawUDP) Expect(prefix string, timeout time.Duration) string {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65535)
	for {
		_ = r.Conn.SetReadDeadline(deadline)
		n, _, err := r.Conn.ReadFromUDP(buf)
		if err != nil {
			r.t.Fatalf("no %q within %s: %v", prefix, timeout, err)
		}
		msg := string(buf[:n])
		if strings.HasPrefix(msg, prefix) {
			return msg
		}
	}
}

// ExpectNothing fails if a datagram whose first line starts with prefix
// arrives within d.
func (r *RawUDP) ExpectNothing(prefix string, d time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	buf := make([]byte, 65535)
	for {
		_ = r.Conn.SetReadDeadline(deadline)
		n, _, err := r.Conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if msg := string(buf[:n]); strings.HasPrefix(msg, prefix) {
			r.t.Fatalf("unexpected %q", strings.SplitN(msg, "\r\n", 2)[0])
		}
	}
}

// Header returns the value of the first header name in a raw message.
func Header(msg, name string) string {
	for _, line := range strings.Split(msg, "\r\n") {
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ResponseTo builds the text of a response to a raw request: Via, From,
// Call-ID and CSeq copied, To copied with toTag added, then extra header
// lines and body.
func ResponseTo(req string, code int, reason, toTag string, extra []string, body string) string {
	var b strings.Builder
	b.WriteString("SIP/2.0 " + strconv.Itoa(code) + " " + reason + "\r\n")
	for _, line := range strings.Split(req, "\r\n") {
		if line == "" {
			break
		}
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "v", "from", "f", "call-id", "i", "cseq":
			b.WriteString(line + "\r\n")
		case "to", "t":
			if toTag != "" && !strings.Contains(line, "tag=") {
				line += ";tag=" + toTag
			}
			b.WriteString(line + "\r\n")
		}
	}
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	return b.String()
}

// ExpectFrom is Expect that also returns the sender's address.
func (r *RawUDP) ExpectFrom(prefix string, timeout time.Duration) (string, string) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65535)
	for {
		_ = r.Conn.SetReadDeadline(deadline)
		n, from, err := r.Conn.ReadFromUDP(buf)
		if err != nil {
			r.t.Fatalf("no %q within %s: %v", prefix, timeout, err)
		}
		if msg := string(buf[:n]); strings.HasPrefix(msg, prefix) {
			return msg, from.String()
		}
	}
}
