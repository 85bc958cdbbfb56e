// Package conf is callpath's typed configuration: one YAML file whose shipped
// version (callpath.yaml, embedded in the binary) holds every key with its
// default, so that no file at all is a working configuration.
package conf

import (
	"path/filepath"
	"time"
)

// Config is the whole gateway configuration.
type Config struct {
	Log           Log           `yaml:"log"`
	SIP           SIP           `yaml:"sip"`
	Routing       Routing       `yaml:"routing"`
	Registrations Registrations `yaml:"registrations"`
	Upstream      Upstream      `yaml:"upstream"`
	CAMARA        CAMARA        `yaml:"camara"`
	Relay         Relay         `yaml:"relay"`
	Media         Media         `yaml:"media"`
	Auth          Auth          `yaml:"auth"`
	HTTP          HTTP          `yaml:"http"`
	GRPC          GRPC          `yaml:"grpc"`
	Store         Store         `yaml:"store"`
	Shutdown      Shutdown      `yaml:"shutdown"`
	Runtime       Runtime       `yaml:"runtime"`
}

// Log selects the log level and format.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// SIP configures the B2BUA's transports and call handling.
type SIP struct {
	Listen           Listen        `yaml:"listen"`
	TLS              TLS           `yaml:"tls"`
	AdvertisedHost   string        `yaml:"advertised_host"`
	UserAgent        string        `yaml:"user_agent"`
	UDPReceiveBuffer int           `yaml:"udp_receive_buffer"`
	NoAnswerTimeout  time.Duration `yaml:"no_answer_timeout"`
	DialogKeepalive  time.Duration `yaml:"dialog_keepalive"`
	MaxForwards      int           `yaml:"max_forwards"`
	Timers           Timers        `yaml:"timers"`
	// DNSServer is the "host:port" of the DNS server asked for the SRV and
	// address records of SIP next hops and TAS names; empty: the system's.
	DNSServer string `yaml:"dns_server"`
}

// Listen holds one listen address per transport; an empty address disables it.
type Listen struct {
	UDP string `yaml:"udp"`
	TCP string `yaml:"tcp"`
	TLS string `yaml:"tls"`
	WS  string `yaml:"ws"`
	WSS string `yaml:"wss"`
}

// TLS holds the certificate for the TLS and WSS listeners.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	CAFile   string `yaml:"ca_file"`
}

// Timers are the RFC 3261 base timers.
type Timers struct {
	T1     time.Duration `yaml:"t1"`
	T2     time.Duration `yaml:"t2"`
	T4     time.Duration `yaml:"t4"`
	Linger time.Duration `yaml:"linger"`
}

// Routing is the static routing table.
type Routing struct {
	DefaultTarget string  `yaml:"default_target"`
	Routes        []Route `yaml:"routes"`
}

// Route sends calls to numbers that match Prefix, or lie in [RangeFrom, RangeTo],
// to Target.
type Route struct {
	Prefix    string `yaml:"prefix"`
	RangeFrom string `yaml:"range_from"`
	RangeTo   string `yaml:"range_to"`
	Target    string `yaml:"target"`
}

// Registrations configures the virtual SIP registrations (SipBreakout API).
type Registrations struct {
	TTL           time.Duration `yaml:"ttl"`
	AllowPlainSIP bool          `yaml:"allow_plain_sip"`
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// FallbackTimeout is how long a FALLBACK number rings before the call
	// goes to its TAS.
	FallbackTimeout time.Duration `yaml:"fallback_timeout"`
	// TASResolveInterval is how often TAS host names are resolved again, to
	// recognise calls from them (INGRESS, a loop's leg 3).
	TASResolveInterval time.Duration `yaml:"tas_resolve_interval"`
	// TASCAFile is a PEM bundle of the CAs trusted for TLS to TASes; empty:
	// those of sip.tls.ca_file.
	TASCAFile string `yaml:"tas_ca_file"`
}

// Upstream configures how numbers are registered at the telco's registrar
// when the telco issues a SIP account per number.
type Upstream struct {
	Expires       time.Duration   `yaml:"expires"`
	RefreshMargin time.Duration   `yaml:"refresh_margin"`
	RetryMin      time.Duration   `yaml:"retry_min"`
	RetryMax      time.Duration   `yaml:"retry_max"`
	Supported     []string        `yaml:"supported"`
	Ranges        []UpstreamRange `yaml:"ranges"`
}

// UpstreamRange says how the telco reaches the numbers starting with
// Prefix: it routes them to callpath (no REGISTER), or it issues a SIP
// account per number that callpath registers at Registrar.
type UpstreamRange struct {
	Prefix    string `yaml:"prefix"`
	Mode      string `yaml:"mode"` // "routed" or "register"
	Registrar string `yaml:"registrar"`
	Domain    string `yaml:"domain"`
	Realm     string `yaml:"realm"` // digest realm of the accounts; empty: any
}

// CAMARA configures the CAMARA WebRTC APIs and the delivery of their
// events.
type CAMARA struct {
	BasePath      string          `yaml:"base_path"`      // prefix before /webrtc-registration/v0.3 etc.
	SweepInterval time.Duration   `yaml:"sweep_interval"` // how often expiry of registrations and subscriptions is checked
	Registration  CAMARARegPolicy `yaml:"registration"`
	// MaxSubscriptions caps the active event subscriptions of one
	// subscriber (more are 429 QUOTA_EXCEEDED).
	MaxSubscriptions int            `yaml:"max_subscriptions"`
	Sinks            CAMARASinks    `yaml:"sinks"`
	Delivery         CAMARADelivery `yaml:"delivery"`
}

// CAMARARegPolicy bounds the lifetime of a device registration.
type CAMARARegPolicy struct {
	DefaultTTL time.Duration `yaml:"default_ttl"`
	MinTTL     time.Duration `yaml:"min_ttl"`
	MaxTTL     time.Duration `yaml:"max_ttl"`
}

// CAMARASinks says which notification sinks subscriptions may name.
type CAMARASinks struct {
	AllowHTTPHosts []string `yaml:"allow_http_hosts"`
	AllowCIDRs     []string `yaml:"allow_cidrs"`
	CAFile         string   `yaml:"ca_file"` // PEM bundle trusted for sinks; empty: the system's CAs
}

// CAMARADelivery tunes the CloudEvents deliverer.
type CAMARADelivery struct {
	Workers     int           `yaml:"workers"`
	Timeout     time.Duration `yaml:"timeout"`
	MaxAttempts int           `yaml:"max_attempts"`
	MaxAge      time.Duration `yaml:"max_age"`
	RetryMin    time.Duration `yaml:"retry_min"`
	RetryMax    time.Duration `yaml:"retry_max"`
}

// Media configures WebRTC calls: the gateway that runs the CAMARA media
// sessions as SIP calls through the B2BUA (package webrtcgw) and the media
// plane that bridges the browser's WebRTC and the SIP side's RTP (package
// webrtc).
type Media struct {
	Enabled bool `yaml:"enabled"`
	// ICEListen is the one UDP port every call's ICE, DTLS and SRTP share.
	ICEListen string `yaml:"ice_listen"`
	// ICEAdvertise replaces the local addresses in ICE candidates (a
	// public address in front of a 1:1 NAT). Empty: the local ones.
	ICEAdvertise []string `yaml:"ice_advertise"`
	// RTPListenIP binds the SIP side's RTP ports; RTPAdvertise is the
	// address written in their SDP (empty: sip.advertised_host if it is
	// an IP address, else this machine's address toward the default
	// route).
	RTPListenIP  string        `yaml:"rtp_listen_ip"`
	RTPAdvertise string        `yaml:"rtp_advertise"`
	RTPPorts     PortRange     `yaml:"rtp_ports"`
	Codecs       []string      `yaml:"codecs"` // G.711 codecs offered to SIP, in order of preference
	DisableOpus  bool          `yaml:"disable_opus"`
	MediaTimeout time.Duration `yaml:"media_timeout"` // no RTP for this long ends a call
	// ConnectTimeout ends a call whose browser leg has not completed ICE
	// and DTLS this long after offer and answer met.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// GatewayListen is the gateway's own SIP address, on loopback: the
	// B2BUA sends it the calls for device numbers.
	GatewayListen string        `yaml:"gateway_listen"`
	RingTimeout   time.Duration `yaml:"ring_timeout"` // an incoming call not answered by then gets 480
	Retention     time.Duration `yaml:"retention"`    // an ended media session stays readable this long
	// SIPDTLSSRTP says when a device's call offers DTLS-SRTP to the SIP
	// side: SIPDTLSOn488, SIPDTLSAlways or SIPDTLSNever. SIP peers' own
	// offers say what they want and are answered in kind.
	SIPDTLSSRTP string `yaml:"sip_dtls_srtp"`
	// DTLSSRTPPeers lists the SIP peers whose media is DTLS-SRTP ("WebRTC
	// style"): hosts ("tas.example.net", any port) or host:port, matched
	// against the targets of static routes and the sip_uri of virtual
	// registrations. A device's call whose every branch goes to one of
	// them offers DTLS-SRTP in its first INVITE.
	DTLSSRTPPeers []string `yaml:"dtls_srtp_peers"`
}

// The values of media.sip_dtls_srtp.
const (
	// SIPDTLSOn488 offers plain RTP and, when the peer refuses it with 488
	// Not Acceptable Here, sends the call again offering DTLS-SRTP.
	SIPDTLSOn488 = "on_488"
	// SIPDTLSAlways offers DTLS-SRTP only.
	SIPDTLSAlways = "always"
	// SIPDTLSNever offers plain RTP only.
	SIPDTLSNever = "never"
)

// PortRange is an inclusive range of UDP ports.
type PortRange struct {
	Min int `yaml:"min"`
	Max int `yaml:"max"`
}

// Relay configures the WebSocket notification relay (package relay):
// embedded in the gateway's HTTP server when Enabled, or run alone by
// `callpath relay` on Listen.
type Relay struct {
	Enabled   bool     `yaml:"enabled"`
	PublicURL string   `yaml:"public_url"` // where senders reach the relay; empty: the Host of each connect
	Listen    string   `yaml:"listen"`     // `callpath relay` only
	TLS       RelayTLS `yaml:"tls"`        // `callpath relay` only
	// KeyFile signs the relay-issued tokens; empty: relay.key beside
	// store.path.
	KeyFile             string        `yaml:"key_file"`
	RequiredScope       string        `yaml:"required_scope"`
	MaxConnections      int           `yaml:"max_connections"`
	MaxBindingsPerOwner int           `yaml:"max_bindings_per_owner"` // 0: no limit
	PingInterval        time.Duration `yaml:"ping_interval"`
	PongTimeout         time.Duration `yaml:"pong_timeout"`
	WriteTimeout        time.Duration `yaml:"write_timeout"`
	MaxMessageBytes     int           `yaml:"max_message_bytes"`
	MaxEventBytes       int           `yaml:"max_event_bytes"`
	AllowedOrigins      []string      `yaml:"allowed_origins"`
	AckWindow           int           `yaml:"ack_window"`
	Queue               RelayQueue    `yaml:"queue"`
	SinkTokenTTL        time.Duration `yaml:"sink_token_ttl"`
	TokenTTL            time.Duration `yaml:"token_ttl"`
	BindingIdleTTL      time.Duration `yaml:"binding_idle_ttl"`
	SweepInterval       time.Duration `yaml:"sweep_interval"`
}

// RelayTLS is the certificate of `callpath relay`'s HTTPS server.
type RelayTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// RelayQueue bounds each binding's queue.
type RelayQueue struct {
	MaxEvents int           `yaml:"max_events"`
	MaxAge    time.Duration `yaml:"max_age"`
	WhenFull  string        `yaml:"when_full"` // "reject" or "drop_oldest"
}

// RelayKeyFile is where the relay's token signing key lives: relay.key_file,
// or relay.key beside the store.
func (c *Config) RelayKeyFile() string {
	if c.Relay.KeyFile != "" {
		return c.Relay.KeyFile
	}
	return filepath.Join(filepath.Dir(c.Store.Path), "relay.key")
}

// Auth says which OAuth2 bearer tokens the APIs accept.
type Auth struct {
	Issuer      string        `yaml:"issuer"`
	Audience    string        `yaml:"audience"`
	JWKSURL     string        `yaml:"jwks_url"`
	JWKSFile    string        `yaml:"jwks_file"`
	JWKSRefresh time.Duration `yaml:"jwks_refresh"`
	Leeway      time.Duration `yaml:"leeway"`
	DevIssuer   DevIssuer     `yaml:"dev_issuer"`
	// Introspection checks opaque (non-JWT) tokens at the issuer's RFC
	// 7662 endpoint; off when its URL is empty.
	Introspection Introspection `yaml:"introspection"`
}

// Introspection is the issuer's token introspection endpoint and callpath's
// client credentials for it.
type Introspection struct {
	URL          string        `yaml:"url"`
	ClientID     string        `yaml:"client_id"`
	ClientSecret string        `yaml:"client_secret"` // better from CALLPATH_AUTH_INTROSPECTION_CLIENT_SECRET
	CacheTTL     time.Duration `yaml:"cache_ttl"`
}

// DevIssuer is callpath's own token issuer for labs and tests.
type DevIssuer struct {
	Enabled bool   `yaml:"enabled"`
	KeyFile string `yaml:"key_file"`
}

// DevIssuerKeyFile is where the dev issuer's key lives: key_file, or
// dev-issuer.key beside the store.
func (c *Config) DevIssuerKeyFile() string {
	if c.Auth.DevIssuer.KeyFile != "" {
		return c.Auth.DevIssuer.KeyFile
	}
	return filepath.Join(filepath.Dir(c.Store.Path), "dev-issuer.key")
}

// HTTP is the operator HTTP server (metrics, health, later the APIs).
type HTTP struct {
	Listen string `yaml:"listen"`
	Pprof  bool   `yaml:"pprof"`
}

// GRPC is the provisioning gRPC server.
type GRPC struct {
	Listen string `yaml:"listen"`
}

// Store is the SQLite database.
type Store struct {
	Path             string        `yaml:"path"`
	CDRFlushInterval time.Duration `yaml:"cdr_flush_interval"`
}

// Shutdown controls the graceful drain on SIGTERM.
type Shutdown struct {
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	RetryAfter   time.Duration `yaml:"retry_after"`
}

// Runtime tunes the Go runtime for the SIP hot path.
type Runtime struct {
	GCPercent   int    `yaml:"gc_percent"`
	MemoryLimit string `yaml:"memory_limit"`
}
