package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/relay"
)

func TestRelayCounters(t *testing.T) {
	t.Parallel()
	m := New()
	r := m.Relay()
	r.RelayAttempt(relay.Attempt{Route: "m365", Latency: 30 * time.Millisecond, Delivered: 2, Failed: 1})
	r.RelayAttempt(relay.Attempt{Route: "m365", Latency: 3 * time.Second, Delivered: 1})
	r.RelayAttempt(relay.Attempt{Route: "gmail", Latency: time.Second, Expired: 1, Deferred: 2, Error: 4})
	out := scrape(t, m)
	for _, want := range []string{
		`postern_relay_recipients_total{outcome="delivered",route="m365"} 3`,
		`postern_relay_recipients_total{outcome="failed",route="m365"} 1`,
		`postern_relay_recipients_total{outcome="expired",route="m365"} 0`,
		`postern_relay_recipients_total{outcome="expired",route="gmail"} 1`,
		`postern_relay_recipients_total{outcome="deferred",route="gmail"} 2`,
		`postern_relay_recipients_total{outcome="error",route="gmail"} 4`,
		`postern_relay_attempt_seconds_count{route="m365"} 2`,
		`postern_relay_attempt_seconds_bucket{route="m365",le="0.02"} 0`,
		`postern_relay_attempt_seconds_bucket{route="m365",le="0.04"} 1`,
		`postern_relay_attempt_seconds_bucket{route="m365",le="5.12"} 2`,
		`postern_relay_attempt_seconds_count{route="gmail"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}
