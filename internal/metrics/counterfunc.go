package metrics

import "github.com/prometheus/client_golang/prometheus"

// CounterFunc registers a counter read at scrape time from f, which must
// only grow (the message index's lost updates).
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}
