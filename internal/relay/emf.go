package relay

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// EMF is an Observer that writes each attempt as one CloudWatch Embedded
// Metric Format line, for the relay function on Lambda: Lambda ships stdout
// to CloudWatch Logs, which turns the line into metrics in the Postern
// namespace by Stage and Route, with no extra service calls.
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

var emfMetrics = []emfMetric{
	{"RelayDelivered", "Count"}, {"RelayDeferred", "Count"}, {"RelayFailed", "Count"},
	{"RelayExpired", "Count"}, {"RelayError", "Count"}, {"RelayAttemptDuration", "Milliseconds"},
}

// RelayAttempt writes a's line. A write that fails loses one data point,
// which is not worth failing the job for.
func (e *EMF) RelayAttempt(a Attempt) {
	b, err := json.Marshal(map[string]any{
		"_aws": map[string]any{
			"Timestamp": e.now().UnixMilli(),
			"CloudWatchMetrics": []map[string]any{{
				"Namespace":  "Postern",
				"Dimensions": [][]string{{"Stage", "Route"}},
				"Metrics":    emfMetrics,
			}},
		},
		"Stage":                "relay",
		"Route":                a.Route,
		"RelayDelivered":       a.Delivered,
		"RelayDeferred":        a.Deferred,
		"RelayFailed":          a.Failed,
		"RelayExpired":         a.Expired,
		"RelayError":           a.Error,
		"RelayAttemptDuration": a.Latency.Milliseconds(),
	})
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.w.Write(append(b, '\n'))
}
