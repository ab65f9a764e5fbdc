package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/webhook"
)

func TestWebhookCounters(t *testing.T) {
	t.Parallel()
	m := New()
	w := m.Webhook()
	w.WebhookAttempt(webhook.Attempt{Route: "scans", Outcome: webhook.OutcomeRetry, Status: 503, Latency: 30 * time.Millisecond})
	w.WebhookAttempt(webhook.Attempt{Route: "scans", Outcome: webhook.OutcomeFailed, Status: 410, Latency: time.Second})
	w.WebhookAttempt(webhook.Attempt{Route: "erp", Outcome: webhook.OutcomeDelivered, Status: 200, Latency: time.Second})
	w.WebhookAttempt(webhook.Attempt{Route: "erp", Outcome: "something-new"})
	out := scrape(t, m)
	for _, want := range []string{
		`postern_webhook_attempts_total{outcome="retry",route="scans"} 1`,
		`postern_webhook_attempts_total{outcome="failed",route="scans"} 1`,
		`postern_webhook_attempts_total{outcome="delivered",route="scans"} 0`,
		`postern_webhook_attempts_total{outcome="expired",route="scans"} 0`,
		`postern_webhook_attempts_total{outcome="delivered",route="erp"} 1`,
		`postern_webhook_attempts_total{outcome="error",route="erp"} 1`,
		`postern_webhook_attempt_seconds_count{route="scans"} 2`,
		`postern_webhook_attempt_seconds_bucket{route="scans",le="0.04"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if strings.Contains(out, "something-new") {
		t.Error("an unknown outcome became a label value")
	}
}
