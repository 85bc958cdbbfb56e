package registry

import "testing"

func TestValidE164(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"+4790000001", true}, {"+12025550123", true}, {"+123456789012345", true},
		{"4790000001", false}, {"+0479000", false}, {"+47 900", false}, {"+", false}, {"+4", false},
		{"+1234567890123456", false}, {"+47900a0001", false}, {"", false},
	} {
		if got := ValidE164(tc.in); got != tc.want {
			t.Errorf("ValidE164(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseTASURI(t *testing.T) {
	for _, tc := range []struct {
		in         string
		allowPlain bool
		want       string // "" means rejected
	}{
		{"sips:tas.example.net", false, "sips:tas.example.net"},
		{"sips:TAS.Example.net:5061", false, "sips:tas.example.net:5061"},
		{"SIPS:tas.example.net", false, "sips:tas.example.net"},
		{"sips:192.0.2.10:5061", false, "sips:192.0.2.10:5061"},
		{"sips:[2001:db8::1]:5061", false, "sips:[2001:db8::1]:5061"},
		{"sips:[2001:db8::1]", false, "sips:[2001:db8::1]"},
		{"sip:tas.example.net", false, ""},
		{"sip:127.0.0.1:5080", true, "sip:127.0.0.1:5080"},
		{"tas.example.net", false, ""},
		{"https://tas.example.net", false, ""},
		{"sips:", false, ""},
		{"sips:user@tas.example.net", false, ""},
		{"sips:tas.example.net;transport=tcp", false, ""},
		{"sips:tas.example.net:0", false, ""},
		{"sips:tas.example.net:70000", false, ""},
		{"sips:tas.example.net:", false, ""},
		{"sips:-bad.example", false, ""},
		{"sips:[2001:db8::1", false, ""},
		{"sips:bad_host.example", false, ""},
	} {
		u, err := ParseTASURI(tc.in, tc.allowPlain)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseTASURI(%q) = %v, want a rejection", tc.in, u)
		case tc.want != "" && err != nil:
			t.Errorf("ParseTASURI(%q): %v", tc.in, err)
		case tc.want != "" && u.String() != tc.want:
			t.Errorf("ParseTASURI(%q) = %q, want %q", tc.in, u.String(), tc.want)
		case err != nil && !IsRejection(err):
			t.Errorf("ParseTASURI(%q) error %v is not a Rejection", tc.in, err)
		}
	}
	if _, err := ParseTASURI("sip:tas.example.net", false); err == nil || err.Error()[:len("Secure SIP domain name required")] != "Secure SIP domain name required" {
		t.Errorf("plain sip: URI: %v, want the API's message", err)
	}
}

func FuzzParseTASURI(f *testing.F) {
	for _, s := range []string{"sips:tas.example.net:5061", "sip:127.0.0.1", "sips:[::1]:5", "sips:a@b;c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseTASURI(s, true)
		if err != nil {
			if !IsRejection(err) {
				t.Fatalf("error %v is not a Rejection", err)
			}
			return
		}
		// What was accepted reads back to itself.
		again, err := ParseTASURI(u.String(), true)
		if err != nil || again != u {
			t.Fatalf("%q -> %q -> %v, %v", s, u.String(), again, err)
		}
	})
}
