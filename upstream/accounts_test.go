package upstream_test

import (
	"testing"

	"callpath/upstream"
)

func TestRangesLongestPrefixWins(t *testing.T) {
	r := upstream.NewRanges([]upstream.Range{
		{Prefix: "+47", Mode: upstream.ModeRegister, Domain: "telco.test"},
		{Prefix: "+4722", Mode: upstream.ModeRouted},
		{Prefix: "+4790", Mode: upstream.ModeRegister, Domain: "mobile.telco.test"},
	})
	for number, want := range map[string]upstream.Range{
		"+4790000001": {Prefix: "+4790", Mode: upstream.ModeRegister, Domain: "mobile.telco.test"},
		"+4722000000": {Prefix: "+4722", Mode: upstream.ModeRouted},
		"+4733000000": {Prefix: "+47", Mode: upstream.ModeRegister, Domain: "telco.test"},
		"+4612345678": {Mode: upstream.ModeRouted},
	} {
		if got := r.Lookup(number); got != want {
			t.Errorf("%s: %+v, want %+v", number, got, want)
		}
	}
}
