// Package emf writes CloudWatch Embedded Metric Format lines: on Lambda,
// stdout goes to CloudWatch Logs, which turns each line into metrics in the
// Postern namespace, by Stage and Route, with no extra service calls.
package emf

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Metric is one metric a line carries.
type Metric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

// Writer writes lines of a fixed set of metrics. One Writer serves
// concurrent callers.
type Writer struct {
	// Now stamps each line; time.Now unless a test replaces it.
	Now func() time.Time

	mu      sync.Mutex // one line at a time
	w       io.Writer
	metrics []Metric
}

// New writes to w (os.Stdout on Lambda) lines naming metrics.
func New(w io.Writer, metrics []Metric) *Writer {
	return &Writer{Now: time.Now, w: w, metrics: metrics}
}

// Line writes one line for stage and route with values, which must hold a
// value for every metric the Writer names (EMF requires each named metric
// to be a member of the line). A write that fails loses one data point,
// which is not worth failing a job for.
func (w *Writer) Line(stage, route string, values map[string]any) {
	line := make(map[string]any, len(values)+3)
	for k, v := range values {
		line[k] = v
	}
	line["_aws"] = map[string]any{
		"Timestamp": w.Now().UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace":  "Postern",
			"Dimensions": [][]string{{"Stage", "Route"}},
			"Metrics":    w.metrics,
		}},
	}
	line["Stage"], line["Route"] = stage, route
	b, err := json.Marshal(line)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.w.Write(append(b, '\n'))
}
