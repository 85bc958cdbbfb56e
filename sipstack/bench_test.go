package sipstack

import (
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sirupsen/logrus"
)

// BenchmarkServerTransaction is the stack's hot path for one request: parse
// a datagram, create its server transaction, hand it to the handler, which
// answers 200 (serialised and sent to a socket nobody reads).
func BenchmarkServerTransaction(b *testing.B) {
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	s := New(Config{T1: 500 * time.Millisecond, Linger: time.Second, Log: logrus.NewEntry(quiet)},
		func(req *sip.Request, tx sip.ServerTransaction) {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		})
	defer s.Close()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	to := netip.MustParseAddrPort(sink.LocalAddr().String())
	parser := sip.NewParser()
	msgs := make([][]byte, 4096)
	for i := range msgs {
		msgs[i] = []byte("BYE sip:+4790000002@127.0.0.1:5060 SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + sink.LocalAddr().String() + ";branch=z9hG4bK-" + strconv.Itoa(i) + ";rport\r\n" +
			"Max-Forwards: 70\r\nFrom: <sip:+4790000001@127.0.0.1>;tag=a\r\nTo: <sip:+4790000002@127.0.0.1>;tag=b\r\n" +
			"Call-ID: bench-" + strconv.Itoa(i) + "\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(msgs) == 0 && i > 0 {
			b.StopTimer()
			for _, tx := range s.server.all() { // forget them: the next round reuses the branches
				tx.terminate(nil)
			}
			b.StartTimer()
		}
		s.receiveDatagram(parser, conn, msgs[i%len(msgs)], to)
	}
}
