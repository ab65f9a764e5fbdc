package metrics

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestInstrumentsAppearWhenUsed(t *testing.T) {
	t.Parallel()
	m := New()
	m.Connection("smtp", "accepted")
	m.AcceptError("submission")
	m.AcceptError("submission")
	m.Reply("RCPT", 550)
	m.Reply("RCPT", 550)
	m.Accepted(&postern.Envelope{Identity: "scanners", Size: 2048}, 3*time.Millisecond)
	m.AuthFailure("")
	m.Job("webhook", "retry", time.Second)
	m.GaugeFunc("postern_smtp_sessions_in_flight", "Open sessions.", func() float64 { return 7 })
	m.Queues(func(context.Context) (map[string]QueueStats, error) {
		return map[string]QueueStats{"webhook": {Visible: 3, InFlight: 1, OldestAge: 90 * time.Second}}, nil
	})
	out := scrape(t, m)
	for _, want := range []string{
		`postern_smtp_connections_total{listener="smtp",outcome="accepted"} 1`,
		`postern_smtp_accept_errors_total{listener="submission"} 2`,
		`postern_smtp_replies_total{code="550",command="RCPT"} 2`,
		`postern_messages_accepted_total{identity="scanners"} 1`,
		`postern_message_bytes_accepted_total{identity="scanners"} 2048`,
		`postern_auth_failures_total{identity="unknown"} 1`,
		`postern_jobs_total{outcome="retry",stage="webhook"} 1`,
		`postern_smtp_sessions_in_flight 7`,
		`postern_queue_messages{queue="webhook",state="visible"} 3`,
		`postern_queue_oldest_message_seconds{queue="webhook"} 90`,
		`postern_ingest_seconds_count 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}
