package sipstack

import (
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sirupsen/logrus"
)

// FuzzReceiveDatagram feeds datagrams to the stack's receive path as the
// UDP read loop does: whatever arrives must never crash it, and requests
// reach the handler only with what a transaction needs (Via and CSeq).
// The responses go to a socket nobody reads.
func FuzzReceiveDatagram(f *testing.F) {
	files, _ := filepath.Glob("../b2bua/testdata/sip/*.sip")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("\r\n\r\n"))
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	s := New(Config{T1: 10 * time.Millisecond, Linger: 10 * time.Millisecond, Log: logrus.NewEntry(quiet)},
		func(req *sip.Request, tx sip.ServerTransaction) {
			if req.Via() == nil || req.CSeq() == nil {
				panic("handler got a request without Via or CSeq")
			}
			if tx != nil {
				_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
			}
		})
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		_ = s.Close()
		_ = conn.Close()
	})
	sink := netip.MustParseAddrPort(conn.LocalAddr().String())
	parser := sip.NewParser()
	f.Fuzz(func(t *testing.T, data []byte) {
		s.receiveDatagram(parser, conn, data, sink)
	})
}
