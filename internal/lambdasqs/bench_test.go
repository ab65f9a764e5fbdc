package lambdasqs

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/postern/postern/internal/postern"
)

// BenchmarkBatch measures records/s through Handle for a stage whose every
// record waits 20 ms (a webhook call), batches of 10 as the event source
// delivers them, one at a time against Concurrency 10.
func BenchmarkBatch(b *testing.B) {
	const batch, call = 10, 20 * time.Millisecond
	var ev events.SQSEvent
	for i := range batch {
		ev.Records = append(ev.Records, rec(fmt.Sprint(i), `{"v":1,"route":"app"}`, 1))
	}
	h := postern.HandlerFunc(func(ctx context.Context, _ postern.Job) error { return webhookCall(ctx, call) })
	for _, conc := range []int{1, 10} {
		b.Run(fmt.Sprintf("Concurrency%d", conc), func(b *testing.B) {
			a := &Adapter{Stage: "webhook", Handler: h, Log: slog.New(slog.DiscardHandler), Concurrency: conc,
				Budget: func([]byte) time.Duration { return time.Second }}
			// A deadline as Lambda gives, so the budget checks run too.
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			for b.Loop() {
				resp, err := a.Handle(ctx, ev)
				if err != nil || len(resp.BatchItemFailures) != 0 {
					b.Fatalf("failures %v, err %v", resp.BatchItemFailures, err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
