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
