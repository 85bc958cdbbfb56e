package routing

import (
	"strings"
	"testing"
)

func TestURIHostPort(t *testing.T) {
	for _, c := range []struct {
		uri, host, port string
		ok              bool
	}{
		{"sip:tas.example.net", "tas.example.net", "", true},
		{"sip:+4790000001@tas.example.net:5080;transport=tcp", "tas.example.net", "5080", true},
		{"sips:tas.example.net;lr", "tas.example.net", "", true},
		{"sip:[2001:db8::1]:5061", "[2001:db8::1]", "5061", true},
		{"sip:user@[2001:db8::1]", "[2001:db8::1]", "", true},
		{"sip:127.0.0.1:5060?Subject=x", "127.0.0.1", "5060", true},
		{"tel:+4790000001", "", "", false},
		{"sip:", "", "", false},
		{"sip:[2001:db8::1", "", "", false},
		{"sip:user@", "", "", false},
	} {
		host, port, ok := URIHostPort(c.uri)
		if host != c.host || port != c.port || ok != c.ok {
			t.Errorf("URIHostPort(%q) = %q, %q, %v; want %q, %q, %v", c.uri, host, port, ok, c.host, c.port, c.ok)
		}
	}
}

func TestSecurePeers(t *testing.T) {
	p := NewSecurePeers([]string{"TAS.example.net", "192.0.2.10:5061", "[2001:db8::1]:5060", "2001:db8::2"})
	for _, c := range []struct {
		uri  string
		want bool
	}{
		{"sip:tas.example.net", true},
		{"sip:+47@tas.example.net:5099;transport=tls", true}, // any port
		{"sip:192.0.2.10:5061", true},
		{"sip:192.0.2.10:5060", false}, // another port
		{"sip:192.0.2.10", false},
		{"sip:[2001:db8::1]:5060", true},
		{"sip:[2001:db8::2]:5070", true},
		{"sip:other.example.net", false},
		{"tel:+4790000001", false},
	} {
		if got := p.Wants(c.uri); got != c.want {
			t.Errorf("Wants(%q) = %v", c.uri, got)
		}
	}
	branch := func(uri string) Branch { return Branch{Target: Target{URI: uri}} }
	for name, c := range map[string]struct {
		plan Plan
		want bool
	}{
		"one listed TAS":        {Plan{Action: ActionForward, Branches: []Branch{branch("sip:tas.example.net")}}, true},
		"fork with a plain one": {Plan{Action: ActionForward, Branches: []Branch{branch("sip:tas.example.net"), branch("sip:pstn.example.net")}}, false},
		"only plain":            {Plan{Action: ActionForward, Branches: []Branch{branch("sip:pstn.example.net")}}, false},
		"rejected":              {Plan{Action: ActionReject, Code: 404}, false},
	} {
		if got := p.Plan(c.plan); got != c.want {
			t.Errorf("%s: Plan = %v", name, got)
		}
	}
	if NewSecurePeers(nil).Wants("sip:tas.example.net") {
		t.Error("an empty list wants DTLS-SRTP")
	}
}

func FuzzURIHostPort(f *testing.F) {
	for _, s := range []string{"sip:a@b:1;x", "sips:[::1]:5061", "sip:[", "sip:@", "tel:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		host, port, ok := URIHostPort(uri)
		if !ok {
			return
		}
		if host == "" || strings.ContainsAny(host, ";?@") || strings.ContainsAny(port, ";?@") {
			t.Fatalf("URIHostPort(%q) = %q, %q", uri, host, port)
		}
	})
}
