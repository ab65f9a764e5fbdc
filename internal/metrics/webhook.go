package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/internal/webhook"
)

// Webhook counts the webhook stage's attempts per route (webhook.Observer).
type Webhook struct {
	attempts *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

var _ webhook.Observer = (*Webhook)(nil)

// webhookOutcomes are every outcome label value, so each route's series
// start at 0 and the label stays bounded whatever a caller passes.
var webhookOutcomes = []string{webhook.OutcomeDelivered, webhook.OutcomeRetry, webhook.OutcomeFailed,
	webhook.OutcomeExpired, webhook.OutcomeError}

// Webhook registers postern_webhook_attempts_total and
// postern_webhook_attempt_seconds and returns the observer that counts into
// them. Call it once per Metrics. Route label values are the names of
// configured webhook routes, which is all webhook.Handler reports.
func (m *Metrics) Webhook() *Webhook {
	w := &Webhook{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_webhook_attempts_total",
			Help: "Webhook delivery attempts by route and outcome: delivered, retry (refused for now or unreachable), failed (refused for good, DSN queued), expired (past the route's max age, DSN queued), error (a fault on this side or an attempt cut short; retried)."},
			[]string{"route", "outcome"}),
		// From 5 ms to about 40 s: a request may take its whole 30 s timeout.
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "postern_webhook_attempt_seconds",
			Help: "Time one webhook attempt took, by route.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)},
			[]string{"route"}),
	}
	m.reg.MustRegister(w.attempts, w.seconds)
	return w
}

// WebhookAttempt counts a by route and outcome, and its time.
func (w *Webhook) WebhookAttempt(a webhook.Attempt) {
	outcome := webhook.OutcomeError
	for _, o := range webhookOutcomes {
		if a.Outcome == o {
			outcome = o
		}
		// A zero still creates the series once, so rates start at 0.
		w.attempts.WithLabelValues(a.Route, o).Add(0)
	}
	w.attempts.WithLabelValues(a.Route, outcome).Inc()
	w.seconds.WithLabelValues(a.Route).Observe(a.Latency.Seconds())
}
