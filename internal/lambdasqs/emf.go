package lambdasqs

import (
	"encoding/json"
	"io"
	"time"
)

// emf writes one CloudWatch Embedded Metric Format line per batch: Lambda
// ships stdout to CloudWatch Logs, which turns such lines into metrics with
// no extra service calls from the function.
type emfCounts struct {
	// Records = Done + Retried + DeadLettered + NotStarted. Retried counts
	// records that ran and are reported as failures; NotStarted those
	// returned unrun for lack of time.
	Done, Retried, DeadLettered, NotStarted, Records int
	Duration                                         time.Duration
}

func writeEMF(w io.Writer, stage string, now time.Time, c emfCounts) error {
	type metric struct {
		Name string `json:"Name"`
		Unit string `json:"Unit"`
	}
	line := map[string]any{
		"_aws": map[string]any{
			"Timestamp": now.UnixMilli(),
			"CloudWatchMetrics": []map[string]any{{
				"Namespace":  "Postern",
				"Dimensions": [][]string{{"Stage"}},
				"Metrics": []metric{
					{"JobsDone", "Count"}, {"JobsRetried", "Count"}, {"JobsDeadLettered", "Count"},
					{"JobsNotStarted", "Count"},
					{"BatchRecords", "Count"}, {"BatchDuration", "Milliseconds"},
				},
			}},
		},
		"Stage":            stage,
		"JobsDone":         c.Done,
		"JobsRetried":      c.Retried,
		"JobsDeadLettered": c.DeadLettered,
		"JobsNotStarted":   c.NotStarted,
		"BatchRecords":     c.Records,
		"BatchDuration":    c.Duration.Milliseconds(),
	}
	b, err := json.Marshal(line)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
