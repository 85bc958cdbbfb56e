package b2bua

import (
	"strings"
	"testing"
)

func TestParseSessionID(t *testing.T) {
	cases := []struct {
		in      string
		want    SessionID
		wantErr bool
	}{
		{"ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2",
			SessionID{"ab30317f1a784dc48ff824d0d3715d86", "47755a9de7794ba387653f2099600ef2"}, false},
		{"ab30317f1a784dc48ff824d0d3715d86", SessionID{"ab30317f1a784dc48ff824d0d3715d86", NullUUID}, false},
		{" AB30317F1A784DC48FF824D0D3715D86 ; REMOTE = 47755A9DE7794BA387653F2099600EF2 ; foo=bar",
			SessionID{"ab30317f1a784dc48ff824d0d3715d86", "47755a9de7794ba387653f2099600ef2"}, false},
		{"ab30317f1a784dc48ff824d0d3715d86;foo;remote=" + NullUUID, SessionID{"ab30317f1a784dc48ff824d0d3715d86", NullUUID}, false},
		{"", SessionID{}, true},
		{"ab30317f1a784dc48ff824d0d3715d8", SessionID{}, true},                     // 31 digits
		{"ab30317f-1a78-4dc4-8ff8-24d0d3715d86", SessionID{}, true},                // dashed UUID form is RFC 7329, not 7989
		{"ab30317f1a784dc48ff824d0d3715d86;remote=xyz", SessionID{}, true},         // bad remote
		{"ab30317f1a784dc48ff824d0d3715d86;remote", SessionID{}, true},             // remote without value
		{"gb30317f1a784dc48ff824d0d3715d86;remote=" + NullUUID, SessionID{}, true}, // not hex
	}
	for _, tc := range cases {
		got, err := ParseSessionID(tc.in)
		if (err != nil) != tc.wantErr {
			t.Fatalf("ParseSessionID(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
		}
		if err == nil && got != tc.want {
			t.Fatalf("ParseSessionID(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestSessionIDStringRoundTrip(t *testing.T) {
	sid := SessionID{Local: NewSessionUUID(), Remote: NullUUID}
	back, err := ParseSessionID(sid.String())
	if err != nil || back != sid {
		t.Fatalf("round trip %q -> %+v, %v", sid.String(), back, err)
	}
	if r := sid.Reversed(); r.Local != sid.Remote || r.Remote != sid.Local {
		t.Fatalf("Reversed() = %+v", r)
	}
	u := NewSessionUUID()
	if len(u) != 32 || strings.ToLower(u) != u || u[12] != '4' {
		t.Fatalf("NewSessionUUID() = %q, want 32 lower-case hex of a v4 UUID", u)
	}
}

func FuzzParseSessionID(f *testing.F) {
	for _, s := range []string{
		"ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2",
		"ab30317f1a784dc48ff824d0d3715d86",
		"ab30317f1a784dc48ff824d0d3715d86;remote=00000000000000000000000000000000;x=y",
		";remote=", "", ";;;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		sid, err := ParseSessionID(in)
		if err != nil {
			return
		}
		// Whatever parsed must format to a value that parses back to itself.
		back, err := ParseSessionID(sid.String())
		if err != nil || back != sid {
			t.Fatalf("%q parsed to %+v which formats to %q and reparses to %+v, %v", in, sid, sid.String(), back, err)
		}
		if !isSessUUID(sid.Local) || !isSessUUID(sid.Remote) {
			t.Fatalf("%q parsed to invalid UUIDs %+v", in, sid)
		}
	})
}
