package b2bua

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"callpath/sipstack"
)

// needsResolve says whether an outgoing INVITE goes through resolveTarget:
// every one over TLS. sipgo's own path would verify the peer against the
// resolved IP and look up SRV records under _sips._tls after A records.
func needsResolve(req *sip.Request) bool {
	return strings.EqualFold(req.Transport(), "TLS")
}

// resolveTarget finds where a TLS request goes (RFC 3263 §4.2: a port in
// the URI means A/AAAA, none means SRV _sips._tcp) and opens a connection
// verified for the URI's host (RFC 5922 §4: the domain in the URI, not an
// SRV target), trying the addresses in order. It returns the address the
// request must be sent to. It does DNS and a TLS handshake: never on a
// socket's read loop.
func (s *Server) resolveTarget(ctx context.Context, req *sip.Request, cfg *tls.Config) (string, error) {
	host, port := req.Recipient.Host, req.Recipient.Port
	addrs, err := sipstack.ResolveSIPS(ctx, s.resolver, host, port)
	if err != nil {
		return "", err
	}
	var errs []error
	for _, addr := range addrs {
		if err := s.stack.DialTLS(ctx, addr, host, cfg); err != nil {
			errs = append(errs, err)
			continue
		}
		return addr.String(), nil
	}
	if len(errs) == 0 {
		return "", fmt.Errorf("no address for %s", host)
	}
	return "", errors.Join(errs...)
}
