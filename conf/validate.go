package conf

import (
	"net"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Validate checks values that parse but make no sense; each error names its key.
func (c *Config) Validate() error {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return keyError("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return keyError("log.format", "want text or json, got %q", c.Log.Format)
	}

	listens := map[string]string{
		"sip.listen.udp": c.SIP.Listen.UDP, "sip.listen.tcp": c.SIP.Listen.TCP,
		"sip.listen.tls": c.SIP.Listen.TLS, "sip.listen.ws": c.SIP.Listen.WS,
		"sip.listen.wss": c.SIP.Listen.WSS, "http.listen": c.HTTP.Listen, "grpc.listen": c.GRPC.Listen,
	}
	for _, key := range []string{"sip.listen.udp", "sip.listen.tcp", "sip.listen.tls", "sip.listen.ws",
		"sip.listen.wss", "http.listen", "grpc.listen"} {
		if err := checkHostPort(key, listens[key]); err != nil {
			return err
		}
	}
	if c.SIP.Listen.UDP == "" && c.SIP.Listen.TCP == "" && c.SIP.Listen.TLS == "" &&
		c.SIP.Listen.WS == "" && c.SIP.Listen.WSS == "" {
		return keyError("sip.listen", "at least one transport must listen")
	}
	if c.SIP.Listen.TLS != "" || c.SIP.Listen.WSS != "" {
		if c.SIP.TLS.CertFile == "" {
			return keyError("sip.tls.cert_file", "required when sip.listen.tls or sip.listen.wss is set")
		}
		if c.SIP.TLS.KeyFile == "" {
			return keyError("sip.tls.key_file", "required when sip.listen.tls or sip.listen.wss is set")
		}
	}
	if (c.SIP.TLS.CertFile == "") != (c.SIP.TLS.KeyFile == "") {
		return keyError("sip.tls.key_file", "sip.tls.cert_file and sip.tls.key_file go together")
	}
	if strings.ContainsAny(c.SIP.AdvertisedHost, " <>;:@\"") && net.ParseIP(c.SIP.AdvertisedHost) == nil {
		return keyError("sip.advertised_host", "want a host name or IP address, got %q", c.SIP.AdvertisedHost)
	}
	if c.SIP.DNSServer != "" {
		if _, port, err := net.SplitHostPort(c.SIP.DNSServer); err != nil || port == "" {
			return keyError("sip.dns_server", "want host:port, got %q", c.SIP.DNSServer)
		}
	}
	if c.SIP.UserAgent == "" || strings.ContainsAny(c.SIP.UserAgent, "\r\n") {
		return keyError("sip.user_agent", "want a non-empty single-line value")
	}
	if c.SIP.UDPReceiveBuffer < 0 {
		return keyError("sip.udp_receive_buffer", "must not be negative")
	}
	if err := positive("sip.no_answer_timeout", c.SIP.NoAnswerTimeout); err != nil {
		return err
	}
	if c.SIP.MaxForwards < 1 || c.SIP.MaxForwards > 255 {
		return keyError("sip.max_forwards", "want 1 to 255, got %d", c.SIP.MaxForwards)
	}
	for key, d := range map[string]time.Duration{"sip.timers.t1": c.SIP.Timers.T1,
		"sip.timers.t2": c.SIP.Timers.T2, "sip.timers.t4": c.SIP.Timers.T4} {
		if err := positive(key, d); err != nil {
			return err
		}
	}
	if c.SIP.Timers.Linger < c.SIP.Timers.T4 {
		return keyError("sip.timers.linger", "must not be shorter than sip.timers.t4 (%s)", c.SIP.Timers.T4)
	}
	if d := c.SIP.DialogKeepalive; d < 0 || (d > 0 && d < time.Second) {
		return keyError("sip.dialog_keepalive", "want 0 (off) or at least 1s, got %s", d)
	}
	if c.SIP.Timers.T2 < c.SIP.Timers.T1 {
		return keyError("sip.timers.t2", "must not be shorter than sip.timers.t1")
	}

	if c.Routing.DefaultTarget != "" {
		if err := checkSIPURI("routing.default_target", c.Routing.DefaultTarget); err != nil {
			return err
		}
	}
	for i, r := range c.Routing.Routes {
		key := "routing.routes[" + strconv.Itoa(i) + "]"
		if err := checkSIPURI(key+".target", r.Target); err != nil {
			return err
		}
		hasRange := r.RangeFrom != "" || r.RangeTo != ""
		if hasRange && r.Prefix != "" {
			return keyError(key, "give either prefix or range_from/range_to, not both")
		}
		if hasRange {
			if len(r.RangeFrom) != len(r.RangeTo) || !isNumber(r.RangeFrom) || !isNumber(r.RangeTo) {
				return keyError(key+".range_from", "range_from and range_to must be numbers of the same length")
			}
			if r.RangeFrom > r.RangeTo {
				return keyError(key+".range_from", "range_from %q is above range_to %q", r.RangeFrom, r.RangeTo)
			}
		}
	}

	if err := c.validateRegistrationsAndAuth(); err != nil {
		return err
	}
	if err := c.validateUpstream(); err != nil {
		return err
	}
	if err := c.validateCAMARA(); err != nil {
		return err
	}
	if err := c.validateRelay(); err != nil {
		return err
	}
	if err := c.validateMedia(); err != nil {
		return err
	}
	if c.Store.Path == "" {
		return keyError("store.path", "must not be empty")
	}
	if c.Store.CDRFlushInterval < 10*time.Millisecond || c.Store.CDRFlushInterval > time.Minute {
		return keyError("store.cdr_flush_interval", "want 10ms to 1m, got %s", c.Store.CDRFlushInterval)
	}
	if err := positive("shutdown.drain_timeout", c.Shutdown.DrainTimeout); err != nil {
		return err
	}
	if c.Shutdown.RetryAfter < time.Second {
		return keyError("shutdown.retry_after", "want at least 1s, got %s", c.Shutdown.RetryAfter)
	}
	if c.Runtime.GCPercent < -1 || c.Runtime.GCPercent == 0 {
		return keyError("runtime.gc_percent", "want a positive percentage or -1 (off), got %d", c.Runtime.GCPercent)
	}
	if c.Runtime.MemoryLimit != "" {
		if _, err := ParseByteSize(c.Runtime.MemoryLimit); err != nil {
			return keyError("runtime.memory_limit", "%v", err)
		}
	}
	return nil
}

func (c *Config) validateRegistrationsAndAuth() error {
	if c.Registrations.TTL < time.Minute {
		return keyError("registrations.ttl", "want at least 1m, got %s", c.Registrations.TTL)
	}
	if err := positive("registrations.sweep_interval", c.Registrations.SweepInterval); err != nil {
		return err
	}
	if err := positive("registrations.tas_resolve_interval", c.Registrations.TASResolveInterval); err != nil {
		return err
	}
	if err := positive("registrations.fallback_timeout", c.Registrations.FallbackTimeout); err != nil {
		return err
	}
	a := c.Auth
	if a.Issuer == "" {
		return keyError("auth.issuer", "must not be empty")
	}
	if a.Audience == "" {
		return keyError("auth.audience", "must not be empty")
	}
	if a.JWKSURL != "" && a.JWKSFile != "" {
		return keyError("auth.jwks_url", "give either jwks_url or jwks_file, not both")
	}
	if a.JWKSURL != "" {
		u, err := url.Parse(a.JWKSURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return keyError("auth.jwks_url", "want an https:// URL, got %q", a.JWKSURL)
		}
	}
	if a.JWKSURL == "" && a.JWKSFile == "" && !a.DevIssuer.Enabled {
		return keyError("auth.jwks_url", "no token keys: set jwks_url or jwks_file, or enable auth.dev_issuer")
	}
	if in := a.Introspection; in.URL != "" {
		u, err := url.Parse(in.URL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return keyError("auth.introspection.url", "want an https:// URL, got %q", in.URL)
		}
		if in.ClientID == "" || in.ClientSecret == "" {
			return keyError("auth.introspection.client_id", "introspection needs client_id and client_secret")
		}
		if in.CacheTTL < 0 {
			return keyError("auth.introspection.cache_ttl", "must not be negative")
		}
	}
	if err := positive("auth.jwks_refresh", a.JWKSRefresh); err != nil {
		return err
	}
	if a.Leeway < 0 || a.Leeway > 10*time.Minute {
		return keyError("auth.leeway", "want 0 to 10m, got %s", a.Leeway)
	}
	return nil
}

func (c *Config) validateUpstream() error {
	u := c.Upstream
	if u.Expires < time.Minute {
		return keyError("upstream.expires", "want at least 1m, got %s", u.Expires)
	}
	if u.RefreshMargin < 0 || u.RefreshMargin >= u.Expires {
		return keyError("upstream.refresh_margin", "want 0 to less than upstream.expires, got %s", u.RefreshMargin)
	}
	if err := positive("upstream.retry_min", u.RetryMin); err != nil {
		return err
	}
	if u.RetryMax < u.RetryMin {
		return keyError("upstream.retry_max", "must not be below upstream.retry_min")
	}
	for i, tag := range u.Supported {
		if tag == "" || strings.ContainsAny(tag, " ,;\r\n") {
			return keyError("upstream.supported["+strconv.Itoa(i)+"]", "want an option tag such as path or outbound, got %q", tag)
		}
	}
	for i, r := range u.Ranges {
		key := "upstream.ranges[" + strconv.Itoa(i) + "]"
		if !strings.HasPrefix(r.Prefix, "+") || !isNumber(r.Prefix[1:]) {
			return keyError(key+".prefix", "want \"+\" and digits, got %q", r.Prefix)
		}
		switch r.Mode {
		case "routed":
		case "register":
			if r.Domain == "" || strings.ContainsAny(r.Domain, " <>;:@/") {
				return keyError(key+".domain", "want the telco's SIP domain, got %q", r.Domain)
			}
			if r.Registrar != "" {
				if err := checkSIPURI(key+".registrar", r.Registrar); err != nil {
					return err
				}
			}
		default:
			return keyError(key+".mode", "want routed or register, got %q", r.Mode)
		}
	}
	return nil
}

func (c *Config) validateCAMARA() error {
	m := c.CAMARA
	if m.BasePath != "" && (!strings.HasPrefix(m.BasePath, "/") || strings.HasSuffix(m.BasePath, "/") || strings.ContainsAny(m.BasePath, " ?#{}")) {
		return keyError("camara.base_path", "want empty or a path such as /camara, got %q", m.BasePath)
	}
	if err := positive("camara.sweep_interval", m.SweepInterval); err != nil {
		return err
	}
	if m.MaxSubscriptions < 1 {
		return keyError("camara.max_subscriptions", "want at least 1, got %d", m.MaxSubscriptions)
	}
	r := m.Registration
	if err := positive("camara.registration.min_ttl", r.MinTTL); err != nil {
		return err
	}
	if r.DefaultTTL < r.MinTTL || r.DefaultTTL > r.MaxTTL {
		return keyError("camara.registration.default_ttl", "want between min_ttl and max_ttl, got %s", r.DefaultTTL)
	}
	for i, h := range m.Sinks.AllowHTTPHosts {
		if h == "" || strings.ContainsAny(h, " /:@") {
			return keyError("camara.sinks.allow_http_hosts["+strconv.Itoa(i)+"]", "want a host name, got %q", h)
		}
	}
	for i, p := range m.Sinks.AllowCIDRs {
		if _, err := netip.ParsePrefix(p); err != nil {
			return keyError("camara.sinks.allow_cidrs["+strconv.Itoa(i)+"]", "want a CIDR such as 10.0.0.0/8, got %q", p)
		}
	}
	d := m.Delivery
	if d.Workers < 1 || d.Workers > 1024 {
		return keyError("camara.delivery.workers", "want 1 to 1024, got %d", d.Workers)
	}
	for key, v := range map[string]time.Duration{"camara.delivery.timeout": d.Timeout, "camara.delivery.retry_min": d.RetryMin, "camara.delivery.max_age": d.MaxAge} {
		if err := positive(key, v); err != nil {
			return err
		}
	}
	if d.RetryMax < d.RetryMin {
		return keyError("camara.delivery.retry_max", "must not be below retry_min")
	}
	if d.MaxAttempts < 1 {
		return keyError("camara.delivery.max_attempts", "want at least 1, got %d", d.MaxAttempts)
	}
	return nil
}

// relayTokenIssuer is the issuer of relay-issued tokens (relay.RelayIssuer):
// operator tokens must not share it.
const relayTokenIssuer = "callpath-relay"

func (c *Config) validateRelay() error {
	r := c.Relay
	if c.Auth.Issuer == relayTokenIssuer {
		return keyError("auth.issuer", "%q is the relay's own token issuer; choose another", relayTokenIssuer)
	}
	if r.PublicURL != "" {
		u, err := url.Parse(r.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return keyError("relay.public_url", "want http(s)://host[:port][/path], got %q", r.PublicURL)
		}
	}
	if err := checkHostPort("relay.listen", r.Listen); err != nil {
		return err
	}
	if (r.TLS.CertFile == "") != (r.TLS.KeyFile == "") {
		return keyError("relay.tls.key_file", "relay.tls.cert_file and relay.tls.key_file go together")
	}
	if r.MaxConnections < 1 || r.MaxConnections > 1_000_000 {
		return keyError("relay.max_connections", "want 1 to 1000000, got %d", r.MaxConnections)
	}
	if r.MaxBindingsPerOwner < 0 {
		return keyError("relay.max_bindings_per_owner", "want 0 (no limit) or more, got %d", r.MaxBindingsPerOwner)
	}
	for key, d := range map[string]time.Duration{"relay.ping_interval": r.PingInterval, "relay.pong_timeout": r.PongTimeout,
		"relay.write_timeout": r.WriteTimeout, "relay.queue.max_age": r.Queue.MaxAge, "relay.sweep_interval": r.SweepInterval} {
		if err := positive(key, d); err != nil {
			return err
		}
	}
	for key, d := range map[string]time.Duration{"relay.sink_token_ttl": r.SinkTokenTTL, "relay.token_ttl": r.TokenTTL,
		"relay.binding_idle_ttl": r.BindingIdleTTL} {
		if d < time.Minute {
			return keyError(key, "want at least 1m, got %s", d)
		}
	}
	if r.MaxMessageBytes < 128 || r.MaxMessageBytes > 1<<20 {
		return keyError("relay.max_message_bytes", "want 128 to 1048576, got %d", r.MaxMessageBytes)
	}
	if r.MaxEventBytes < 1024 || r.MaxEventBytes > 16<<20 {
		return keyError("relay.max_event_bytes", "want 1024 to 16777216, got %d", r.MaxEventBytes)
	}
	for i, o := range r.AllowedOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" {
			return keyError("relay.allowed_origins["+strconv.Itoa(i)+"]", "want an origin such as https://app.example.com, or *, got %q", o)
		}
	}
	if r.AckWindow < 1 || r.AckWindow > 10000 {
		return keyError("relay.ack_window", "want 1 to 10000, got %d", r.AckWindow)
	}
	if r.Queue.MaxEvents < 1 {
		return keyError("relay.queue.max_events", "want at least 1, got %d", r.Queue.MaxEvents)
	}
	switch r.Queue.WhenFull {
	case "reject", "drop_oldest":
	default:
		return keyError("relay.queue.when_full", "want reject or drop_oldest, got %q", r.Queue.WhenFull)
	}
	return nil
}

// ApplyRuntime sets the Go runtime knobs of the config.
func (c *Config) ApplyRuntime() {
	debug.SetGCPercent(c.Runtime.GCPercent)
	if n, err := ParseByteSize(c.Runtime.MemoryLimit); err == nil && n > 0 {
		debug.SetMemoryLimit(n)
	}
}

func positive(key string, d time.Duration) error {
	if d <= 0 {
		return keyError(key, "must be positive, got %s", d)
	}
	return nil
}

func checkHostPort(key, addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return keyError(key, "want host:port, got %q", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return keyError(key, "port %q is not 0-65535", port)
	}
	if host != "" && net.ParseIP(host) == nil && strings.ContainsAny(host, " /@") {
		return keyError(key, "host %q is not a host name or IP address", host)
	}
	return nil
}

func checkSIPURI(key, uri string) error {
	lower := strings.ToLower(uri)
	if !strings.HasPrefix(lower, "sip:") && !strings.HasPrefix(lower, "sips:") {
		return keyError(key, "want a sip: or sips: URI, got %q", uri)
	}
	rest := uri[strings.IndexByte(uri, ':')+1:]
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		rest = rest[at+1:]
	}
	if rest == "" || rest[0] == ';' || rest[0] == ':' || strings.ContainsAny(uri, " \r\n<>\"") {
		return keyError(key, "URI %q has no host", uri)
	}
	return nil
}

func isNumber(s string) bool {
	s = strings.TrimPrefix(s, "+")
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// ParseByteSize reads sizes such as "512MiB", "2GiB", "1048576".
func ParseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, &sizeError{s}
	}
	return n * mult, nil
}

type sizeError struct{ s string }

func (e *sizeError) Error() string {
	return "want a size such as 512MiB or 2GiB, got " + strconv.Quote(e.s)
}
