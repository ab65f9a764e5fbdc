package relay

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
	e.RelayAttempt(Attempt{Route: "m365", Latency: 1500 * time.Millisecond, Delivered: 2, Failed: 1})
	e.RelayAttempt(Attempt{Route: "gmail", Deferred: 3})
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
		Stage, Route                                                         string
		RelayDelivered, RelayDeferred, RelayFailed, RelayExpired, RelayError int
		RelayAttemptDuration                                                 int64
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
	// requires, with its value.
	var raw map[string]any
	json.Unmarshal(lines[0], &raw)
	for _, m := range cw.Metrics {
		if _, ok := raw[m.Name]; !ok {
			t.Errorf("metric %s named but absent", m.Name)
		}
	}
	if got.Stage != "relay" || got.Route != "m365" || got.RelayDelivered != 2 || got.RelayFailed != 1 ||
		got.RelayDeferred != 0 || got.RelayAttemptDuration != 1500 {
		t.Errorf("line %s", lines[0])
	}
	if err := json.Unmarshal(lines[1], &got); err != nil || got.Route != "gmail" || got.RelayDeferred != 3 {
		t.Errorf("second line %s (%v)", lines[1], err)
	}
}
