// Package lambdasqs runs a stage handler under AWS Lambda's SQS event
// source: one invocation is a batch of records, and the response lists the
// records to retry (ReportBatchItemFailures), so one bad record does not
// send the whole batch back.
package lambdasqs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue/sqsqueue"
)

// Visibility reschedules a record for a later retry (SQS
// ChangeMessageVisibility on the record's source queue).
type Visibility interface {
	ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error
}

// DeadLetter takes the body of a record that can never succeed.
type DeadLetter interface {
	Send(ctx context.Context, body []byte, delay time.Duration) (string, error)
}

// Adapter turns SQS events into handler calls.
type Adapter struct {
	Stage   string
	Handler postern.Handler
	Log     *slog.Logger
	// Visibility, when set, delays each retried record by its backoff (or
	// the delay the handler asked for) instead of the queue's visibility
	// timeout.
	Visibility Visibility
	// DeadLetter, when set, receives records whose handler failed
	// permanently; they are then acknowledged. Without it they are reported
	// as failures and the queue's redrive policy dead-letters them.
	DeadLetter DeadLetter
	// Margin is the time kept in hand before the invocation deadline:
	// records not started by then are returned for retry. Default 5s.
	Margin    time.Duration
	BaseDelay time.Duration // default 5s
	MaxDelay  time.Duration // default 15m; SQS caps visibility at 12h
	// Metrics, when set, receives one CloudWatch Embedded Metric Format
	// line per batch (os.Stdout in Lambda).
	Metrics io.Writer
}

// Handle processes a batch. Records are handled one after another so the
// order within a message group is kept and memory stays bounded.
func (a *Adapter) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	start := time.Now()
	counts := emfCounts{Records: len(ev.Records)}
	if a.Metrics != nil {
		defer func() {
			counts.Duration = time.Since(start)
			counts.Retried = len(resp.BatchItemFailures)
			counts.Done = counts.Records - counts.Retried - counts.DeadLettered
			writeEMF(a.Metrics, a.Stage, time.Now(), counts)
		}()
	}
	margin := a.Margin
	if margin <= 0 {
		margin = 5 * time.Second
	}
	for i, r := range ev.Records {
		if dl, ok := ctx.Deadline(); (ok && time.Until(dl) < margin) || ctx.Err() != nil {
			// Out of time: hand back what was not started.
			for _, rest := range ev.Records[i:] {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rest.MessageId})
			}
			a.Log.Warn("deadline near; returning records unprocessed", slog.String("stage", a.Stage), slog.Int("records", len(ev.Records)-i))
			break
		}
		done, deadLettered := a.one(ctx, r)
		if deadLettered {
			counts.DeadLettered++
		}
		if !done {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
		}
	}
	return resp, nil
}

// one handles a record and reports whether it is done (to be deleted) and
// whether it went to the dead-letter queue.
func (a *Adapter) one(ctx context.Context, r events.SQSMessage) (done, deadLettered bool) {
	attempt, _ := strconv.Atoi(r.Attributes["ApproximateReceiveCount"])
	log := a.Log.With(slog.String("stage", a.Stage), slog.String("job_id", r.MessageId), slog.Int("attempt", attempt))
	var enc string
	if v, ok := r.MessageAttributes[sqsqueue.BodyEncodingAttribute]; ok && v.StringValue != nil {
		enc = *v.StringValue
	}
	body, err := sqsqueue.DecodeBody(r.Body, enc)
	if err == nil {
		err = a.call(ctx, postern.Job{Body: body, Attempt: max(attempt, 1)})
	} else {
		err = postern.Permanent(fmt.Errorf("record %s: %w", r.MessageId, err))
	}
	switch {
	case err == nil:
		return true, false
	case postern.IsPermanent(err):
		log.Error("job failed permanently", slog.String("error", err.Error()))
		if a.DeadLetter == nil {
			return false, false
		}
		if _, derr := a.DeadLetter.Send(ctx, []byte(r.Body), 0); derr != nil {
			log.Error("dead-letter failed; leaving the record to the redrive policy", slog.String("error", derr.Error()))
			return false, false
		}
		return true, true
	default:
		d, ok := postern.RetryDelay(err)
		if !ok {
			d = a.backoff(attempt)
		}
		log.Warn("job failed; will retry", slog.String("error", err.Error()), slog.Int64("retry_in_ms", d.Milliseconds()))
		if a.Visibility != nil {
			if verr := a.Visibility.ChangeVisibility(ctx, r.ReceiptHandle, d); verr != nil {
				log.Warn("reschedule failed; the visibility timeout applies", slog.String("error", verr.Error()))
			}
		}
		return false, false
	}
}

func (a *Adapter) call(ctx context.Context, job postern.Job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			a.Log.Error("handler panic", slog.String("stage", a.Stage), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("%s handler panic: %v", a.Stage, p)
		}
	}()
	return a.Handler.Handle(ctx, job)
}

// backoff is the delay before the next try, as in the local worker; SQS
// caps visibility at 12 hours.
func (a *Adapter) backoff(attempt int) time.Duration {
	base, limit := a.BaseDelay, a.MaxDelay
	if base <= 0 {
		base = 5 * time.Second
	}
	if limit <= 0 {
		limit = 15 * time.Minute
	}
	return postern.Backoff(attempt, base, min(limit, 12*time.Hour))
}
