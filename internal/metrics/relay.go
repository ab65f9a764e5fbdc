package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/internal/relay"
)

// Relay counts the relay stage's attempts per route (relay.Observer).
type Relay struct {
	recipients *prometheus.CounterVec
	attempts   *prometheus.HistogramVec
}

var _ relay.Observer = (*Relay)(nil)

// Relay registers postern_relay_recipients_total and
// postern_relay_attempt_seconds and returns the observer that counts into
// them. Call it once per Metrics. Route label values are the names of
// configured relay routes, which is all relay.Handler reports.
func (m *Metrics) Relay() *Relay {
	r := &Relay{
		recipients: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_relay_recipients_total",
			Help: "Relay recipients by route and outcome of an attempt: delivered, deferred (retried), failed (refused for good, DSN queued), expired (past the route's max age, DSN queued), error (a fault on this side; the job is retried)."},
			[]string{"route", "outcome"}),
		// From 5 ms to about 40 s: an SMTP transaction may take its whole
		// 30 s budget.
		attempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "postern_relay_attempt_seconds",
			Help: "Time one relay attempt (one send through the route's transport) took, by route.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)},
			[]string{"route"}),
	}
	m.reg.MustRegister(r.recipients, r.attempts)
	return r
}

// RelayAttempt counts a's recipients by outcome, and its time.
func (r *Relay) RelayAttempt(a relay.Attempt) {
	for outcome, n := range map[string]int{"delivered": a.Delivered, "deferred": a.Deferred, "failed": a.Failed,
		"expired": a.Expired, "error": a.Error} {
		// A zero still creates the series once, so rates start at 0.
		r.recipients.WithLabelValues(a.Route, outcome).Add(float64(max(n, 0)))
	}
	r.attempts.WithLabelValues(a.Route).Observe(a.Latency.Seconds())
}
