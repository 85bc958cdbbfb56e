package routing

import (
	"net/netip"
	"strings"
)

// SecurePeers are the SIP peers whose media is DTLS-SRTP ("WebRTC style",
// DESIGN §4), as the operator lists them: a trunk's or a registration's
// TAS host, with or without a port. Calls the media plane originates
// toward them offer DTLS-SRTP from the first INVITE.
type SecurePeers struct {
	hosts map[string]bool // "host" (any port) or "host:port", lower case
}

// NewSecurePeers builds the set from entries such as "tas.example.net",
// "192.0.2.10:5061" or "[2001:db8::1]:5060".
func NewSecurePeers(entries []string) SecurePeers {
	p := SecurePeers{hosts: make(map[string]bool, len(entries))}
	for _, e := range entries {
		e = strings.ToLower(strings.TrimSpace(e))
		if ip, err := netip.ParseAddr(e); err == nil && ip.Is6() {
			e = "[" + e + "]" // as URIHostPort gives an IPv6 host
		}
		p.hosts[e] = true
	}
	return p
}

// Wants reports whether the SIP URI's host (or host and port) is listed.
func (p SecurePeers) Wants(uri string) bool {
	host, port, ok := URIHostPort(uri)
	if !ok || len(p.hosts) == 0 {
		return false
	}
	host = strings.ToLower(host)
	if p.hosts[host] {
		return true
	}
	return port != "" && p.hosts[host+":"+port]
}

// Plan reports whether every branch the plan rings goes to a listed peer:
// one INVITE's offer reaches them all, so a fork between a listed peer
// and another one gets the plain offer (and the listed peer can still ask
// with 488).
func (p SecurePeers) Plan(plan Plan) bool {
	if plan.Action != ActionForward || len(plan.Branches) == 0 {
		return false
	}
	for _, b := range plan.Branches {
		if !p.Wants(b.Target.URI) {
			return false
		}
	}
	return true
}

// URIHostPort splits a SIP URI ("sip:user@host:port;params", "sips:…",
// IPv6 hosts in brackets) into its host and port (empty when absent).
// The brackets of an IPv6 host are kept, so host:port is written back
// as it was. ok is false for a URI without a host.
func URIHostPort(uri string) (host, port string, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(uri), "sip:")
	if !found {
		rest, found = strings.CutPrefix(strings.TrimSpace(uri), "sips:")
	}
	if !found {
		return "", "", false
	}
	if i := strings.IndexAny(rest, ";?"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", "", false
		}
		host, rest = rest[:end+1], rest[end+1:]
		port, _ = strings.CutPrefix(rest, ":")
		return host, port, host != "[]"
	}
	host, port, _ = strings.Cut(rest, ":")
	return host, port, host != ""
}
