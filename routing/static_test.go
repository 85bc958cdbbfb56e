package routing

import "testing"

func TestStaticTableDecide(t *testing.T) {
	table := NewStaticTable([]Route{
		{Prefix: "+47", Target: "sip:norway.example"},
		{Prefix: "+4790", Target: "sip:mobile.example"},
		{RangeFrom: "+4790001000", RangeTo: "+4790001999", Target: "sip:pbx.example"},
		{Prefix: "+479000155", Target: "sip:longer-prefix.example"},
	}, "")
	cases := []struct {
		name, to string
		want     Decision
	}{
		{"shortest prefix", "+4722000000", Forward(Target{URI: "sip:norway.example"})},
		{"longer prefix wins", "+4790500000", Forward(Target{URI: "sip:mobile.example"})},
		{"range beats the prefix it lies in", "+4790001500", Forward(Target{URI: "sip:pbx.example"})},
		{"range lower bound inclusive", "+4790001000", Forward(Target{URI: "sip:pbx.example"})},
		{"range upper bound inclusive", "+4790001999", Forward(Target{URI: "sip:pbx.example"})},
		{"range needs equal length", "+47900015000", Forward(Target{URI: "sip:mobile.example"})},
		{"longer prefix beats range", "+4790001550", Forward(Target{URI: "sip:longer-prefix.example"})},
		{"no match without default", "+4612345678", Reject(404, "Not Found")},
		{"empty number", "", Reject(404, "Not Found")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := table.Decide(Call{To: tc.to})
			if got.Action != tc.want.Action || got.Code != tc.want.Code ||
				len(got.Targets) != len(tc.want.Targets) ||
				(len(got.Targets) == 1 && got.Targets[0] != tc.want.Targets[0]) {
				t.Fatalf("Decide(%q) = %+v, want %+v", tc.to, got, tc.want)
			}
		})
	}
}

func TestStaticTableDefaultAndCatchAll(t *testing.T) {
	withDefault := NewStaticTable(nil, "sip:trunk.example")
	if d := withDefault.Decide(Call{To: "+15551234"}); d.Action != ActionForward || d.Targets[0].URI != "sip:trunk.example" {
		t.Fatalf("default target not used: %+v", d)
	}
	catchAll := NewStaticTable([]Route{{Prefix: "", Target: "sip:all.example"}, {Prefix: "+1", Target: "sip:us.example"}}, "sip:trunk.example")
	if d := catchAll.Decide(Call{To: "+4790000000"}); d.Targets[0].URI != "sip:all.example" {
		t.Fatalf("empty prefix should match before the default: %+v", d)
	}
	if d := catchAll.Decide(Call{To: "+15550000"}); d.Targets[0].URI != "sip:us.example" {
		t.Fatalf("specific prefix should beat the catch-all: %+v", d)
	}
}

func BenchmarkStaticTableDecide(b *testing.B) {
	routes := make([]Route, 0, 200)
	for i := 0; i < 200; i++ {
		routes = append(routes, Route{Prefix: "+47" + string(rune('0'+i%10)) + string(rune('0'+i/10%10)), Target: "sip:x.example"})
	}
	table := NewStaticTable(routes, "sip:trunk.example")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = table.Decide(Call{To: "+4612345678"})
	}
}
