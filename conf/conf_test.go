package conf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsRunAsTheyAre(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatalf("embedded defaults do not load: %v", err)
	}
	if cfg.SIP.Listen.UDP != "0.0.0.0:5060" || cfg.SIP.Listen.TCP != "0.0.0.0:5060" ||
		cfg.HTTP.Listen != "0.0.0.0:8080" || cfg.GRPC.Listen != "0.0.0.0:9090" ||
		!strings.HasPrefix(cfg.Store.Path, "./var/") {
		t.Fatalf("defaults are not what the README promises: %+v", cfg)
	}
	if cfg.SIP.NoAnswerTimeout != 120*time.Second || cfg.Shutdown.DrainTimeout != 30*time.Second {
		t.Fatalf("durations: %+v %+v", cfg.SIP, cfg.Shutdown)
	}
	r := cfg.Relay
	if !r.Enabled || r.Listen != "0.0.0.0:8090" || r.MaxConnections != 16000 || r.Queue.WhenFull != "reject" ||
		r.PingInterval != 25*time.Second || cfg.RelayKeyFile() != filepath.Join("var", "relay.key") {
		t.Fatalf("relay defaults: %+v, key %s", r, cfg.RelayKeyFile())
	}
}

// Every key of the config struct is written, with a comment, in the shipped
// file: the file is the documentation.
func TestEveryKeyDocumentedInShippedFile(t *testing.T) {
	text := string(DefaultYAML())
	for _, key := range ScalarKeys() {
		last := key[strings.LastIndexByte(key, '.')+1:]
		if !strings.Contains(text, last+":") {
			t.Errorf("key %s is missing from conf/callpath.yaml", key)
		}
	}
	if !strings.Contains(text, "routes:") {
		t.Error("routing.routes is missing from conf/callpath.yaml")
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	cases := []struct{ yaml, key string }{
		{"sip: {listen: {udpp: x}}", "sip.listen.udpp"},
		{"sip: {no_answer_timeout: soon}", "sip.no_answer_timeout"},
		{"sip: {dialog_keepalive: 500ms}", "sip.dialog_keepalive"},
		{"sip: {dialog_keepalive: -1m}", "sip.dialog_keepalive"},
		{"sip: {max_forwards: many}", "sip.max_forwards"},
		{"sip: {max_forwards: 0}", "sip.max_forwards"},
		{"log: {level: loud}", "log.level"},
		{"log: [1, 2]", "log"},
		{"http: {listen: nonsense}", "http.listen"},
		{"routing: {routes: [{prefix: '+47', target: 'http://x'}]}", "routing.routes[0].target"},
		{"routing: {routes: [{range_from: '+4710', range_to: '+47099', target: 'sip:x'}]}", "routing.routes[0].range_from"},
		{"routing: {routes: [{prefix: '1', range_from: '1', range_to: '2', target: 'sip:x'}]}", "routing.routes[0]"},
		{"routing: {routes: {a: b}}", "routing.routes"},
		{"sip: {listen: {tls: '127.0.0.1:5061'}}", "sip.tls.cert_file"},
		{"sip: {listen: {udp: '', tcp: ''}}", "sip.listen"},
		{"shutdown: {retry_after: 10ms}", "shutdown.retry_after"},
		{"runtime: {memory_limit: lots}", "runtime.memory_limit"},
		{"store: {path: ''}", "store.path"},
		{"unknown_section: 1", "unknown_section"},
		{"sip: {dns_server: 'no-port'}", "sip.dns_server"},
		{"upstream: {ranges: [{prefix: '+47', mode: sometimes}]}", "upstream.ranges[0].mode"},
		{"upstream: {ranges: [{prefix: '47', mode: routed}]}", "upstream.ranges[0].prefix"},
		{"upstream: {ranges: [{prefix: '+47', mode: register}]}", "upstream.ranges[0].domain"},
		{"upstream: {expires: 10s}", "upstream.expires"},
		{"camara: {sinks: {allow_cidrs: ['10.0.0.0/33']}}", "camara.sinks.allow_cidrs[0]"},
		{"camara: {base_path: 'camara/'}", "camara.base_path"},
		{"media: {rtp_ports: {min: 30000, max: 20000}}", "media.rtp_ports"},
		{"media: {codecs: [opus]}", "media.codecs[0]"},
		{"media: {gateway_listen: '0.0.0.0:5070'}", "media.gateway_listen"},
		{"media: {ice_listen: 'stun.example.net:3478'}", "media.ice_listen"},
		{"media: {media_timeout: 0s}", "media.media_timeout"},
		{"media: {sip_dtls_srtp: sdes}", "media.sip_dtls_srtp"},
		{"media: {dtls_srtp_peers: ['tas.example.net', 'sip:pbx.example.net']}", "media.dtls_srtp_peers[1]"},
		{"media: {dtls_srtp_peers: ['pbx.example.net:99999']}", "media.dtls_srtp_peers[0]"},
		{"sip: {listen: {udp: ''}}", "media.enabled"},
		{"camara: {registration: {default_ttl: 1s}}", "camara.registration.default_ttl"},
		{"camara: {delivery: {workers: 0}}", "camara.delivery.workers"},
		{"relay: {public_url: 'relay.example.com'}", "relay.public_url"},
		{"relay: {listen: 'nowhere'}", "relay.listen"},
		{"relay: {tls: {cert_file: 'c.pem'}}", "relay.tls.key_file"},
		{"relay: {max_connections: 0}", "relay.max_connections"},
		{"relay: {ping_interval: 0s}", "relay.ping_interval"},
		{"relay: {max_message_bytes: 10}", "relay.max_message_bytes"},
		{"relay: {allowed_origins: ['https://app.example.com/path']}", "relay.allowed_origins[0]"},
		{"relay: {ack_window: 0}", "relay.ack_window"},
		{"relay: {queue: {when_full: block}}", "relay.queue.when_full"},
		{"relay: {queue: {max_events: 0}}", "relay.queue.max_events"},
		{"relay: {sink_token_ttl: 10s}", "relay.sink_token_ttl"},
		{"relay: {shiny: true}", "relay.shiny"},
		{"auth: {issuer: callpath-relay}", "auth.issuer"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.yaml))
		if err == nil {
			t.Errorf("%q: no error", tc.yaml)
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.key+":") {
			t.Errorf("%q: error %q does not name %s", tc.yaml, err, tc.key)
		}
	}
}

func TestFileAndEnvironmentOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	data := "sip:\n  listen: {udp: '127.0.0.1:5070'}\nrouting:\n  routes:\n    - {prefix: '+47', target: 'sip:127.0.0.1:5080'}\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, []string{"CALLPATH_LOG_LEVEL=debug", "CALLPATH_SIP_NO_ANSWER_TIMEOUT=45s", "PATH=/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SIP.Listen.UDP != "127.0.0.1:5070" || cfg.SIP.Listen.TCP != "0.0.0.0:5060" {
		t.Fatalf("file did not merge over defaults: %+v", cfg.SIP.Listen)
	}
	if cfg.Log.Level != "debug" || cfg.SIP.NoAnswerTimeout != 45*time.Second {
		t.Fatalf("env not applied: %s %s", cfg.Log.Level, cfg.SIP.NoAnswerTimeout)
	}
	if len(cfg.Routing.Routes) != 1 || cfg.Routing.Routes[0].Prefix != "+47" {
		t.Fatalf("routes: %+v", cfg.Routing.Routes)
	}
	if _, err := Load(path, []string{"CALLPATH_SIP_MAX_FORWARDS=lots"}); err == nil || !strings.Contains(err.Error(), "sip.max_forwards") {
		t.Fatalf("bad env value: %v", err)
	}
	if _, err := Load(path, []string{"CALLPATH_NO_SUCH_KEY=1"}); err == nil || !strings.Contains(err.Error(), "CALLPATH_NO_SUCH_KEY") {
		t.Fatalf("unknown env key: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil {
		t.Fatal("missing file accepted")
	}
	if EnvName("sip.listen.udp") != "CALLPATH_SIP_LISTEN_UDP" {
		t.Fatal(EnvName("sip.listen.udp"))
	}
}

func FuzzParse(f *testing.F) {
	f.Add(string(DefaultYAML()))
	f.Add("sip: {listen: {udp: '127.0.0.1:0'}}\nrouting: {routes: [{prefix: '', target: 'sip:x'}]}")
	f.Add("log: &a {level: debug}\nhttp: *a")
	f.Add("[1, 2, {a: b}]")
	f.Fuzz(func(t *testing.T, data string) {
		cfg, err := Parse([]byte(data))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a config Validate rejects: %v", err)
		}
	})
}

// Peers for DTLS-SRTP may be named by host, host:port or bracketed IPv6
// with a port.
func TestDTLSSRTPPeersAccepted(t *testing.T) {
	base, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseOver(base, []byte("media: {dtls_srtp_peers: ['tas.example.net', '192.0.2.1:5061', '[2001:db8::1]:5060', '2001:db8::2']}"))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(cfg.Media.DTLSSRTPPeers); got != 4 {
		t.Fatalf("%d peers", got)
	}
}
