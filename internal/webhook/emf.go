package webhook

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// EMF is an Observer that writes each attempt as one CloudWatch Embedded
// Metric Format line, for the webhook function on Lambda: Lambda ships
// stdout to CloudWatch Logs, which turns the line into metrics in the
// Postern namespace by Stage and Route, with no extra service calls. Each
// line counts 1 in its outcome's metric and 0 in the others, so sums and
// alarms per outcome work.
type EMF struct {
	mu  sync.Mutex // one line at a time; records run concurrently
	w   io.Writer
	now func() time.Time
}

var _ Observer = (*EMF)(nil)

// NewEMF writes to w (os.Stdout in Lambda).
func NewEMF(w io.Writer) *EMF { return &EMF{w: w, now: time.Now} }

type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

// emfNames maps each outcome to its metric name.
var emfNames = map[string]string{
	OutcomeDelivered: "WebhookDelivered", OutcomeRetry: "WebhookRetry", OutcomeFailed: "WebhookFailed",
	OutcomeExpired: "WebhookExpired", OutcomeError: "WebhookError",
}

var emfMetrics = []emfMetric{
	{"WebhookDelivered", "Count"}, {"WebhookRetry", "Count"}, {"WebhookFailed", "Count"},
	{"WebhookExpired", "Count"}, {"WebhookError", "Count"}, {"WebhookAttemptDuration", "Milliseconds"},
}

// WebhookAttempt writes a's line. A write that fails loses one data point,
// which is not worth failing the job for.
func (e *EMF) WebhookAttempt(a Attempt) {
	line := map[string]any{
		"_aws": map[string]any{
			"Timestamp": e.now().UnixMilli(),
			"CloudWatchMetrics": []map[string]any{{
				"Namespace":  "Postern",
				"Dimensions": [][]string{{"Stage", "Route"}},
				"Metrics":    emfMetrics,
			}},
		},
		"Stage":                  "webhook",
		"Route":                  a.Route,
		"WebhookAttemptDuration": a.Latency.Milliseconds(),
	}
	name, ok := emfNames[a.Outcome]
	if !ok {
		name = emfNames[OutcomeError]
	}
	for _, n := range emfNames {
		line[n] = 0
	}
	line[name] = 1
	b, err := json.Marshal(line)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.w.Write(append(b, '\n'))
}
