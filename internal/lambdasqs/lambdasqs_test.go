package lambdasqs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/postern/postern/internal/postern"
)

type recordingVis struct {
	mu  sync.Mutex
	got map[string]time.Duration
}

func (v *recordingVis) ChangeVisibility(_ context.Context, receipt string, d time.Duration) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.got[receipt] = d
	return nil
}

// changed returns the visibility set for receipt, if any.
func (v *recordingVis) changed(receipt string) (time.Duration, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	d, ok := v.got[receipt]
	return d, ok
}

type recordingDLQ struct {
	mu     sync.Mutex
	bodies []string
}

func (d *recordingDLQ) Send(_ context.Context, body []byte, _ time.Duration) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.bodies = append(d.bodies, string(body))
	return "x", nil
}

func (d *recordingDLQ) sent() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.bodies...)
}

func rec(id, body string, count int) events.SQSMessage {
	return events.SQSMessage{MessageId: id, ReceiptHandle: "rh-" + id, Body: body,
		Attributes: map[string]string{"ApproximateReceiveCount": string(rune('0' + count))}}
}

// The adapter is driven the way Lambda drives it: through lambda.NewHandler
// and Invoke with the JSON of an SQS event.
func TestBatchItemFailures(t *testing.T) {
	t.Parallel()
	var seen []int
	h := postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		seen = append(seen, job.Attempt)
		switch string(job.Body) {
		case "ok":
			return nil
		case "temp":
			return errors.New("webhook 503")
		case "later":
			return postern.RetryAfter(errors.New("429"), 42*time.Second)
		case "perm":
			return postern.Permanent(errors.New("bad job"))
		case "panic":
			panic("boom")
		}
		t.Fatalf("unexpected body %q", job.Body)
		return nil
	})
	vis := &recordingVis{got: map[string]time.Duration{}}
	dlq := &recordingDLQ{}
	a := &Adapter{Stage: "test", Handler: h, Log: slog.New(slog.DiscardHandler), Visibility: vis, DeadLetter: dlq}
	ev := events.SQSEvent{Records: []events.SQSMessage{rec("1", "ok", 1), rec("2", "temp", 3), rec("3", "later", 1), rec("4", "perm", 1), rec("5", "panic", 2)}}
	payload, _ := json.Marshal(ev)
	out, err := lambda.NewHandler(a.Handle).Invoke(context.Background(), payload)
	if err != nil {
		t.Fatal(err)
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	if want := []string{"2", "3", "5"}; !equal(failed, want) {
		t.Errorf("batch item failures %v, want %v", failed, want)
	}
	if !equal(dlq.sent(), []string{"perm"}) {
		t.Errorf("dead-lettered %v", dlq.bodies)
	}
	if vis.got["rh-3"] != 42*time.Second {
		t.Errorf("Retry-After not honoured: %v", vis.got)
	}
	if d, ok := vis.got["rh-2"]; !ok || d > 20*time.Second {
		t.Errorf("attempt 3 backoff %v, want within [0, 20s]", d)
	}
	if len(seen) != 5 || seen[1] != 3 {
		t.Errorf("attempts seen %v", seen)
	}
}

func TestDeadlineReturnsUnstartedRecords(t *testing.T) {
	t.Parallel()
	calls := 0
	h := postern.HandlerFunc(func(ctx context.Context, job postern.Job) error { calls++; return nil })
	a := &Adapter{Stage: "test", Handler: h, Log: slog.New(slog.DiscardHandler), Margin: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := a.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{rec("a", "x", 1), rec("b", "y", 1)}})
	if err != nil || calls != 0 || len(resp.BatchItemFailures) != 2 {
		t.Fatalf("calls=%d failures=%v err=%v", calls, resp.BatchItemFailures, err)
	}
}

func TestPermanentWithoutDLQIsReportedFailed(t *testing.T) {
	t.Parallel()
	h := postern.HandlerFunc(func(ctx context.Context, job postern.Job) error { return postern.Permanent(errors.New("x")) })
	a := &Adapter{Stage: "test", Handler: h, Log: slog.New(slog.DiscardHandler)}
	resp, _ := a.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{rec("a", "x", 1)}})
	if len(resp.BatchItemFailures) != 1 {
		t.Fatalf("failures %v", resp.BatchItemFailures)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEMFLinePerBatch(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		switch string(job.Body) {
		case "temp":
			return errors.New("later")
		case "perm":
			return postern.Permanent(errors.New("never"))
		}
		return nil
	})
	a := &Adapter{Stage: "webhook", Handler: h, Log: slog.New(slog.DiscardHandler), DeadLetter: &recordingDLQ{}, Metrics: &buf}
	a.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{rec("1", "ok", 1), rec("2", "ok", 1), rec("3", "temp", 1), rec("4", "perm", 1)}})
	var line struct {
		AWS struct {
			CloudWatchMetrics []struct {
				Namespace string
				Metrics   []struct{ Name string }
			}
		} `json:"_aws"`
		Stage                                                                 string
		JobsDone, JobsRetried, JobsDeadLettered, JobsNotStarted, BatchRecords int
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("EMF line %q: %v", buf.String(), err)
	}
	if line.Stage != "webhook" || line.JobsDone != 2 || line.JobsRetried != 1 || line.JobsDeadLettered != 1 || line.JobsNotStarted != 0 || line.BatchRecords != 4 {
		t.Errorf("EMF counts %+v", line)
	}
	if len(line.AWS.CloudWatchMetrics) != 1 || line.AWS.CloudWatchMetrics[0].Namespace != "Postern" || len(line.AWS.CloudWatchMetrics[0].Metrics) != 6 {
		t.Errorf("EMF directive %+v", line.AWS)
	}
}
