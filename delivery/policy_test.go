package delivery

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"callpath/internal/dnstest"
	"callpath/internal/siptest"
)

func TestValidateSink(t *testing.T) {
	p := SinkPolicy{AllowHTTPHosts: []string{"Lab.Example"}, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}}
	for _, tc := range []struct {
		sink, want string // want: a substring of the error, "" for accepted
	}{
		{"https://sink.example.com/events?x=1", ""},
		{"https://sink.example.com:8443/events", ""},
		{"https://8.8.8.8/e", ""},
		{"https://[2001:4860::8888]/e", ""},
		{"http://lab.example/e", ""},
		{"http://lab.example.:8080/e", ""},
		{"https://10.9.1.1/e", ""},
		{"", "empty"},
		{"https://exa mple.com/", "not a valid URL"},
		{"::not a url", "not a valid URL"},
		{"/relative/path", "absolute"},
		{"mailto:someone@example.com", "absolute"},
		{"https://user:pw@sink.example.com/", "user info"},
		{"https://user@sink.example.com/", "user info"},
		{"http://sink.example.com/", "must use https"},
		{"ftp://sink.example.com/", `scheme "ftp" is not supported`},
		{"wss://sink.example.com/", `scheme "wss" is not supported`},
		{"https:///path", "no host"},
		{"https://sink.example.com:99999/", "invalid port"},
		{"https://sink.example.com:0/", "invalid port"},
		{"https://sink.example.com/#frag", "fragment"},
		{"https://" + strings.Repeat("a", maxSinkLen) + ".com/", "longer than"},
		{"https://127.0.0.1/", "loopback"},
		{"https://[::1]:8443/", "loopback"},
		{"https://[::ffff:127.0.0.1]/", "loopback"},
		{"https://[64:ff9b::7f00:1]/", "loopback (via NAT64)"},
		{"https://10.1.2.3/", "private"},
		{"https://172.16.0.1/", "private"},
		{"https://192.168.1.1/", "private"},
		{"https://[fd12::1]/", "private"},
		{"https://169.254.169.254/latest/meta-data", "link-local"},
		{"https://[fe80::1%25eth0]/", "link-local"},
		{"https://0.0.0.0/", "unspecified"},
		{"https://[::]/", "unspecified"},
		{"https://0.1.2.3/", "0.0.0.0/8"},
		{"https://100.64.0.1/", "CGNAT"},
		{"https://224.0.0.1/", "multicast"},
		{"https://[ff02::1]/", "multicast"},
		{"https://239.1.2.3/", "multicast"},
		{"https://[fec0::1]/", "site-local"},
		{"https://[64:ff9b::808:808]/", ""},
		{"https://255.255.255.255/", "reserved"},
	} {
		err := p.ValidateSink(tc.sink)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q refused: %v", tc.sink, err)
		case tc.want != "" && err == nil:
			t.Errorf("%q accepted, want an error with %q", tc.sink, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%q: error %q, want it to mention %q", tc.sink, err, tc.want)
		}
		if err != nil {
			var se *SinkError
			var ae *AddressError
			if !errors.As(err, &se) && !errors.As(err, &ae) {
				t.Errorf("%q: error %T is neither *SinkError nor *AddressError", tc.sink, err)
			}
		}
	}
	// The zero policy: https only, public addresses only.
	if err := (SinkPolicy{}).ValidateSink("http://lab.example/"); err == nil {
		t.Error("zero policy accepted plain http")
	}
	if err := (SinkPolicy{}).ValidateSink("https://10.9.1.1/"); err == nil {
		t.Error("zero policy accepted a private address")
	}
	// A name is not resolved by ValidateSink: localhost passes here and is
	// refused when connecting.
	if err := (SinkPolicy{}).ValidateSink("https://localhost/"); err != nil {
		t.Errorf("localhost: %v", err)
	}
}

// The dialler checks the address actually dialled: https://localhost
// (127.0.0.1 via /etc/hosts) is refused unless 127.0.0.0/8 is allowed.
func TestConnectTimeCheckLocalhost(t *testing.T) {
	ca := siptest.NewTestCA(t)
	sink := newSink(t, ca, nil)
	_, port, _ := net.SplitHostPort(sink.srv.Listener.Addr().String())
	url := "https://localhost:" + port + "/events"

	t.Run("refused", func(t *testing.T) {
		db, _ := newDB(t)
		opts, _ := testOptions(ca)
		opts.Policy = SinkPolicy{}
		d, _ := start(t, db, opts)
		enqueue(t, db, event("ev", "sub", url, "tok"))
		d.Notify()
		waitFor(t, 10*time.Second, "dead letter", func() bool { _, dead := depth(t, db); return dead == 1 })
		e := deadLetters(t, db)[0]
		if !strings.Contains(e.LastError, "127.0.0.1 is loopback") || e.Attempts != 1 {
			t.Errorf("attempts %d, last error %q", e.Attempts, e.LastError)
		}
		if arr, _ := sink.snapshot(); len(arr) != 0 {
			t.Errorf("sink got %d requests", len(arr))
		}
	})
	t.Run("allowed", func(t *testing.T) {
		db, _ := newDB(t)
		opts, _ := testOptions(ca) // allows 127.0.0.0/8
		d, _ := start(t, db, opts)
		enqueue(t, db, event("ev", "sub", url, "tok"))
		d.Notify()
		waitFor(t, 10*time.Second, "delivery", func() bool { _, acc := sink.snapshot(); return len(acc) == 1 })
	})
}

// A name from an injected resolver that points at 127.0.0.1 is refused at
// connect time too, and allowed once its range is listed.
func TestConnectTimeCheckResolver(t *testing.T) {
	resolver, _ := dnstest.Start(t, "--host-record=evil.test,127.0.0.1")
	ca := siptest.NewTestCA(t)
	sink := newSink(t, ca, nil)
	sink.srv.TLS.Certificates = append(sink.srv.TLS.Certificates, ca.Issue(t, "evil.test"))
	_, port, _ := net.SplitHostPort(sink.srv.Listener.Addr().String())
	url := "https://evil.test:" + port + "/events"

	for _, allow := range []bool{false, true} {
		opts, _ := testOptions(ca)
		opts.Resolver = resolver
		if !allow {
			opts.Policy = SinkPolicy{}
		}
		d := New(nil, opts)
		a := d.post(testContext(t), event("ev", "sub", url, "tok"), "evil.test")
		var want string
		if allow {
			want = OutcomeDelivered
		} else {
			want = OutcomeDead
		}
		if a.outcome != want {
			t.Errorf("allow=%v: outcome %s (%s), want %s", allow, a.outcome, a.reason, want)
		}
		if !allow && !strings.Contains(a.reason, "127.0.0.1 is loopback") {
			t.Errorf("reason %q", a.reason)
		}
		d.client.CloseIdleConnections()
	}
	if _, acc := sink.snapshot(); len(acc) != 1 {
		t.Errorf("sink accepted %d, want 1", len(acc))
	}
}

// Plain http needs the host listed.
func TestPlainHTTPNeedsListedHost(t *testing.T) {
	sink := newSink(t, nil, nil)
	url := sink.srv.URL + "/events"

	db, _ := newDB(t)
	opts, _ := testOptions(nil)
	d, _ := start(t, db, opts)
	enqueue(t, db, event("refused", "sub", url, "tok"))
	d.Notify()
	waitFor(t, 10*time.Second, "dead letter", func() bool { _, dead := depth(t, db); return dead == 1 })
	if e := deadLetters(t, db)[0]; !strings.Contains(e.LastError, "must use https") {
		t.Errorf("last error %q", e.LastError)
	}

	db2, _ := newDB(t)
	opts.Policy.AllowHTTPHosts = []string{"127.0.0.1"}
	d2, _ := start(t, db2, opts)
	enqueue(t, db2, event("allowed", "sub", url, "tok"))
	d2.Notify()
	waitFor(t, 10*time.Second, "delivery", func() bool { _, acc := sink.snapshot(); return len(acc) == 1 })
	if arr, _ := sink.snapshot(); len(arr) != 1 || arr[0].id != "allowed" {
		t.Errorf("sink got %v", arr)
	}
}

// The TLS certificate is checked against the configured roots.
func TestUntrustedCertificateRetries(t *testing.T) {
	ca := siptest.NewTestCA(t)
	other := siptest.NewTestCA(t)
	sink := newSink(t, ca, nil)
	opts, _ := testOptions(other)
	d := New(nil, opts)
	defer d.client.CloseIdleConnections()
	a := d.post(context.Background(), event("ev", "sub", sink.URL(), ""), "h")
	if a.outcome != OutcomeRetry || !strings.Contains(a.reason, "certificate") {
		t.Errorf("outcome %s (%s)", a.outcome, a.reason)
	}
	if strings.Contains(a.reason, "k=v") {
		t.Errorf("reason carries the URL query: %s", a.reason)
	}
}

func TestControlRefusesUnparsable(t *testing.T) {
	if err := (SinkPolicy{}).Control("tcp", "not-an-address", nil); err == nil {
		t.Error("accepted")
	}
	if err := (SinkPolicy{}).Control("tcp", "93.184.216.34:443", nil); err != nil {
		t.Error(err)
	}
	if err := (SinkPolicy{}).Control("tcp6", "[::1]:443", nil); err == nil {
		t.Error("::1 accepted")
	}
	p := SinkPolicy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	if err := p.Control("tcp6", "[::ffff:127.0.0.2]:443", nil); err != nil {
		t.Errorf("mapped 127.0.0.2: %v", err)
	}
}
