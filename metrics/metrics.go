// Package metrics owns callpath's Prometheus registry. Every series is named
// callpath_… and lives on a registry created here and passed in, never on the
// global default registry, so several gateways can run in one test process.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every series.
const Namespace = "callpath"

// Registry wraps the Prometheus registry of one gateway.
type Registry struct {
	reg      *prometheus.Registry
	SIP      *SIP
	Breakout *Breakout
	Upstream *Upstream
	CAMARA   *CAMARA
	Media    *Media
}

// New builds a registry with the Go and process collectors and the SIP series.
func New() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Registry{reg: reg, SIP: newSIP(reg), Breakout: newBreakout(reg), Upstream: newUpstream(reg), CAMARA: newCAMARA(reg), Media: newMedia(reg)}
}

// Prometheus exposes the underlying registry for packages that add their own series.
func (r *Registry) Prometheus() *prometheus.Registry { return r.reg }

// Handler serves the registry in the Prometheus exposition format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
}
