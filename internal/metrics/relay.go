package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Relay counts the relay stage's outcomes per route (relay.Observer).
type Relay struct {
	recipients *prometheus.CounterVec
	attempts   *prometheus.HistogramVec
}

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

func (r *Relay) RelayRecipients(route, outcome string, n int) {
	if n < 0 {
		return
	}
	r.recipients.WithLabelValues(route, outcome).Add(float64(n))
}

func (r *Relay) RelayAttempt(route string, d time.Duration) {
	r.attempts.WithLabelValues(route).Observe(d.Seconds())
}
