package emf

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"
	"time"
)

// Lines from concurrent callers stay whole, one per call, each with the
// directive, the dimensions and the values given.
func TestLine(t *testing.T) {
	var buf bytes.Buffer
	w := New(&buf, []Metric{{Name: "Sent", Unit: "Count"}})
	w.Now = func() time.Time { return time.UnixMilli(42) }
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { w.Line("relay", "m365", map[string]any{"Sent": 1}) })
	}
	wg.Wait()
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != 20 {
		t.Fatalf("%d lines, want 20", len(lines))
	}
	for _, l := range lines {
		var got struct {
			AWS struct {
				Timestamp         int64
				CloudWatchMetrics []struct {
					Namespace  string
					Dimensions [][]string
					Metrics    []Metric
				}
			} `json:"_aws"`
			Stage, Route string
			Sent         int
		}
		if err := json.Unmarshal(l, &got); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		cw := got.AWS.CloudWatchMetrics
		if got.AWS.Timestamp != 42 || len(cw) != 1 || cw[0].Namespace != "Postern" || len(cw[0].Metrics) != 1 ||
			cw[0].Metrics[0].Name != "Sent" || got.Stage != "relay" || got.Route != "m365" || got.Sent != 1 {
			t.Fatalf("line %s", l)
		}
	}
}
