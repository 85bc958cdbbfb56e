package b2bua

import (
	"os"
	"strconv"
	"testing"

	"github.com/emiago/sipgo/sip"

	"callpath/routing"
)

func BenchmarkParseSessionID(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ParseSessionID("ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCallTable(b *testing.B) {
	t := newCallTable()
	legs := make([]*leg, 10000)
	for i := range legs {
		legs[i] = &leg{key: dialogKey("call-"+strconv.Itoa(i), "tag"), side: sideUAS}
		t.add(legs[i])
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if t.get(legs[i%len(legs)].key) == nil {
				b.Fatal("missing")
			}
			i++
		}
	})
}

// BenchmarkParseInvite is sipgo's parse of a real SIPp INVITE, the baseline
// to subtract from BenchmarkNewCallAndOutgoingInvite.
func BenchmarkParseInvite(b *testing.B) {
	data, err := os.ReadFile("testdata/sip/invite.sip")
	if err != nil {
		b.Fatal(err)
	}
	parser := sip.NewParser()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := parser.ParseSIP(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewCallAndOutgoingInvite measures what callpath adds per call on
// top of sipgo before the first byte leaves: the call, both legs and the
// outgoing INVITE built from a real SIPp INVITE (parse included; subtract
// BenchmarkParseInvite).
func BenchmarkNewCallAndOutgoingInvite(b *testing.B) {
	data, err := os.ReadFile("testdata/sip/invite.sip")
	if err != nil {
		b.Fatal(err)
	}
	s := fuzzServer(b)
	parser := sip.NewParser()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		msg, err := parser.ParseSIP(data)
		if err != nil {
			b.Fatal(err)
		}
		req := msg.(*sip.Request)
		req.SetTransport("UDP")
		c := s.newCall(req)
		route := routing.Branch{Kind: routing.ToDestination, Target: routing.Target{URI: "sip:127.0.0.1:5080"}, User: c.to}
		if _, _, err := s.newOutgoingInvite(c, req, route, 69); err != nil {
			b.Fatal(err)
		}
	}
}
