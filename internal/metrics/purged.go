package metrics

import "github.com/prometheus/client_golang/prometheus"

// Purged registers postern_purged_total and returns the retention observer
// that counts into it. Call it once per Metrics.
func (m *Metrics) Purged() func(kind string, n int) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_purged_total",
		Help: "What retention removed in local mode, by kind: message (its objects in the store), webhook_outbox, relay_outbox, dsn_outbox (files)."},
		[]string{"kind"})
	m.reg.MustRegister(c)
	return func(kind string, n int) { c.WithLabelValues(kind).Add(float64(n)) }
}
