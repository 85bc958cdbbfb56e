package b2bua

import (
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func provisionalWith(code int, headers map[string]string) *sip.Response {
	res := sip.NewResponse(code, "Progress")
	for name, value := range headers {
		res.AppendHeader(sip.NewHeader(name, value))
	}
	return res
}

func TestReliableRSeq(t *testing.T) {
	for _, tc := range []struct {
		name    string
		code    int
		headers map[string]string
		rseq    uint32
		ok      bool
	}{
		{"reliable 183", 183, map[string]string{"Require": "100rel", "RSeq": "7"}, 7, true},
		{"among other tags, any case", 180, map[string]string{"Require": "precondition, 100REL", "RSeq": " 4294967295 "}, 4294967295, true},
		{"no Require", 183, map[string]string{"RSeq": "7"}, 0, false},
		{"Require without 100rel", 183, map[string]string{"Require": "precondition", "RSeq": "7"}, 0, false},
		{"no RSeq", 183, map[string]string{"Require": "100rel"}, 0, false},
		{"RSeq 0", 183, map[string]string{"Require": "100rel", "RSeq": "0"}, 0, false},
		{"RSeq too big", 183, map[string]string{"Require": "100rel", "RSeq": "4294967296"}, 0, false},
		{"RSeq not a number", 183, map[string]string{"Require": "100rel", "RSeq": "1x"}, 0, false},
		{"100 is never reliable", 100, map[string]string{"Require": "100rel", "RSeq": "1"}, 0, false},
		{"a final response is not", 200, map[string]string{"Require": "100rel", "RSeq": "1"}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rseq, ok := reliableRSeq(provisionalWith(tc.code, tc.headers))
			if rseq != tc.rseq || ok != tc.ok {
				t.Fatalf("got %d %v, want %d %v", rseq, ok, tc.rseq, tc.ok)
			}
		})
	}
}

// Whatever a callee puts in Require and RSeq, reading them never panics,
// and an RSeq taken is the number the header says.
func FuzzReliableRSeq(f *testing.F) {
	for _, seed := range [][2]string{{"100rel", "1"}, {"100rel, timer", "4294967295"}, {"", ""}, {"100rel", "-1"}, {",,100rel,", "01"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, require, rseq string) {
		rseqNum, ok := reliableRSeq(provisionalWith(183, map[string]string{"Require": require, "RSeq": rseq}))
		if !ok {
			return
		}
		n, err := strconv.ParseUint(strings.TrimSpace(rseq), 10, 32)
		if err != nil || uint32(n) != rseqNum || n == 0 {
			t.Fatalf("RSeq %q read as %d", rseq, rseqNum)
		}
	})
}

func TestParseRAck(t *testing.T) {
	for _, tc := range []struct {
		in         string
		rseq, cseq uint32
		method     sip.RequestMethod
		ok         bool
	}{
		{"776656 1 INVITE", 776656, 1, sip.INVITE, true},
		{"  1\t2  invite ", 1, 2, sip.INVITE, true},
		{"1 2", 0, 0, "", false},
		{"1 2 INVITE extra", 0, 0, "", false},
		{"x 2 INVITE", 0, 0, "", false},
		{"1 4294967296 INVITE", 0, 0, "", false},
		{"", 0, 0, "", false},
	} {
		rseq, cseq, method, ok := parseRAck(tc.in)
		if rseq != tc.rseq || cseq != tc.cseq || method != tc.method || ok != tc.ok {
			t.Errorf("parseRAck(%q) = %d %d %q %v", tc.in, rseq, cseq, method, ok)
		}
	}
}

// Whatever a caller puts in RAck, reading it never panics, and what is
// read is three fields that read back the same when written out again.
func FuzzParseRAck(f *testing.F) {
	for _, seed := range []string{"1 1 INVITE", "4294967295 4294967295 invite", "", "1  2", "-1 2 INVITE"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rseq, cseq, method, ok := parseRAck(in)
		if !ok {
			return
		}
		if len(strings.Fields(in)) != 3 || !strings.EqualFold(string(method), strings.Fields(in)[2]) {
			t.Fatalf("RAck %q read as %d %d %q", in, rseq, cseq, method)
		}
		again := strconv.FormatUint(uint64(rseq), 10) + " " + strconv.FormatUint(uint64(cseq), 10) + " " + string(method)
		if r2, c2, m2, ok2 := parseRAck(again); !ok2 || r2 != rseq || c2 != cseq || m2 != method {
			t.Fatalf("RAck %q read as %d %d %q, which reads back as %d %d %q", in, rseq, cseq, method, r2, c2, m2)
		}
	})
}

// BenchmarkReliableRSeqOrdinary180 is the cost reliable provisional
// support adds to every ordinary 180 the B2BUA relays.
func BenchmarkReliableRSeqOrdinary180(b *testing.B) {
	res := provisionalWith(180, map[string]string{"Contact": "<sip:callee@127.0.0.1:5080>", "Allow": "INVITE, ACK, BYE",
		"Supported": "timer", "Require": "timer"})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := reliableRSeq(res); ok {
			b.Fatal("an ordinary 180 taken as reliable")
		}
	}
}
