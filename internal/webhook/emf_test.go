package webhook

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func TestEMFLinePerAttempt(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	e := NewEMF(&buf)
	e.Now = func() time.Time { return time.UnixMilli(1764900000000) }
	e.WebhookAttempt(Attempt{Route: "scans", Outcome: OutcomeFailed, Status: 410, Latency: 1500 * time.Millisecond})
	e.WebhookAttempt(Attempt{Route: "erp", Outcome: OutcomeDelivered, Status: 200})
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.Bytes())
	}
	var got struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		Stage, Route                                                                string
		WebhookDelivered, WebhookRetry, WebhookFailed, WebhookExpired, WebhookError int
		WebhookAttemptDuration                                                      int64
	}
	if err := json.Unmarshal(lines[0], &got); err != nil {
		t.Fatal(err)
	}
	if got.AWS.Timestamp != 1764900000000 || len(got.AWS.CloudWatchMetrics) != 1 {
		t.Fatalf("_aws %+v", got.AWS)
	}
	cw := got.AWS.CloudWatchMetrics[0]
	if cw.Namespace != "Postern" || len(cw.Dimensions) != 1 || !slices.Equal(cw.Dimensions[0], []string{"Stage", "Route"}) {
		t.Errorf("namespace %q dimensions %v", cw.Namespace, cw.Dimensions)
	}
	// Every metric the directive names is a member of the line, as EMF
	// requires.
	var raw map[string]any
	json.Unmarshal(lines[0], &raw)
	for _, m := range cw.Metrics {
		if _, ok := raw[m.Name]; !ok {
			t.Errorf("metric %s named but absent", m.Name)
		}
	}
	if got.Stage != "webhook" || got.Route != "scans" || got.WebhookFailed != 1 || got.WebhookDelivered != 0 ||
		got.WebhookAttemptDuration != 1500 {
		t.Errorf("line %s", lines[0])
	}
	got.WebhookFailed = 0
	if err := json.Unmarshal(lines[1], &got); err != nil || got.Route != "erp" || got.WebhookDelivered != 1 || got.WebhookFailed != 0 {
		t.Errorf("second line %s (%v)", lines[1], err)
	}
}
