package metrics

import (
	"context"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gaugesAtScrape is a gauge with one label whose values are read when
// Prometheus scrapes (counts kept elsewhere: registrations by state, the
// outbox's depth), so nothing has to be kept in step.
type gaugesAtScrape struct {
	desc *prometheus.Desc
	read func(ctx context.Context) (map[string]float64, error)
}

func (g *gaugesAtScrape) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *gaugesAtScrape) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	values, err := g.read(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(g.desc, err)
		return
	}
	labels := make([]string, 0, len(values))
	for l := range values {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, values[l], l)
	}
}
