package app

import (
	"net"

	"github.com/sirupsen/logrus"

	"callpath/b2bua"
	"callpath/conf"
	"callpath/metrics"
	"callpath/upstream"
)

// upstreamRanges is the config's number ranges.
func upstreamRanges(cfg *conf.Config) *upstream.Ranges {
	ranges := make([]upstream.Range, len(cfg.Upstream.Ranges))
	for i, r := range cfg.Upstream.Ranges {
		ranges[i] = upstream.Range{Prefix: r.Prefix, Mode: upstream.Mode(r.Mode), Registrar: r.Registrar, Domain: r.Domain, Realm: r.Realm}
	}
	return upstream.NewRanges(ranges)
}

// newUpstream builds the upstream registration client on the B2BUA's SIP
// stack, with its metrics.
func newUpstream(cfg *conf.Config, sip *b2bua.Server, resolver *net.Resolver, m *metrics.Registry, log *logrus.Entry) (*upstream.Client, error) {
	u := cfg.Upstream
	c, err := upstream.New(upstream.Config{
		Expires: u.Expires, RefreshMargin: u.RefreshMargin, RetryMin: u.RetryMin, RetryMax: u.RetryMax,
		Supported: u.Supported, UserAgent: cfg.SIP.UserAgent, MaxForwards: cfg.SIP.MaxForwards,
	}, upstream.Deps{UA: sip, Resolver: resolver, Metrics: m.Upstream, Log: log})
	if err != nil {
		return nil, err
	}
	states := make([]string, len(upstream.States))
	for i, s := range upstream.States {
		states[i] = s.String()
	}
	m.Upstream.Registrations(states, func() map[string]int {
		out := map[string]int{}
		for s, n := range c.Counts() {
			out[s.String()] = n
		}
		return out
	})
	return c, nil
}
