package metrics

import (
	"strings"
	"testing"
	"time"
)

func TestRelayCounters(t *testing.T) {
	t.Parallel()
	m := New()
	r := m.Relay()
	r.RelayRecipients("m365", "delivered", 2)
	r.RelayRecipients("m365", "delivered", 1)
	r.RelayRecipients("m365", "failed", 1)
	r.RelayRecipients("gmail", "expired", 1)
	r.RelayAttempt("m365", 30*time.Millisecond)
	r.RelayAttempt("m365", 3*time.Second)
	out := scrape(t, m)
	for _, want := range []string{
		`postern_relay_recipients_total{outcome="delivered",route="m365"} 3`,
		`postern_relay_recipients_total{outcome="failed",route="m365"} 1`,
		`postern_relay_recipients_total{outcome="expired",route="gmail"} 1`,
		`postern_relay_attempt_seconds_count{route="m365"} 2`,
		`postern_relay_attempt_seconds_bucket{route="m365",le="0.02"} 0`,
		`postern_relay_attempt_seconds_bucket{route="m365",le="0.04"} 1`,
		`postern_relay_attempt_seconds_bucket{route="m365",le="5.12"} 2`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if strings.Contains(out, `route="gmail",le=`) {
		t.Error("a route with no attempt has a histogram")
	}
}
