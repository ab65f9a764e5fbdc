// Package lambdasqs runs a stage handler under AWS Lambda's SQS event
// source: one invocation is a batch of records, and the response lists the
// records to retry (ReportBatchItemFailures), so one bad record does not
// send the whole batch back.
//
// # Deadlines
//
// An invocation that runs out of time fails as a whole: Lambda returns every
// record of the batch, including those already delivered (duplicates), and
// they wait out the queue's visibility timeout. So Handle never lets that
// happen on purpose:
//
//   - handlers run under a context that ends Margin before the invocation's
//     deadline, which leaves time to report and reschedule;
//   - a record starts only when its Budget (its worst-case handler time)
//     fits in the time left before that handler deadline;
//   - a record not started is reported as a batch item failure and made
//     visible again at once (ChangeVisibility 0), so it runs in the next
//     invocation rather than after the visibility timeout;
//   - a record whose handler was cut short by that deadline is retried (even
//     if the handler called the cut permanent), never dead-lettered;
//   - a handler that ignores its context, and any bookkeeping call, is
//     waited for only until Margin/2 before the invocation's deadline; the
//     record is then reported as failed and Handle returns.
package lambdasqs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue/sqsqueue"
)

// Defaults for the Adapter's zero fields.
const (
	// DefaultMargin is the Adapter's Margin when unset.
	DefaultMargin = 5 * time.Second
	// DefaultBudget is a record's budget when Adapter.Budget is nil: the
	// webhook and relay stages' default per-call timeout (30 s), which
	// parse and dsn records stay well under.
	DefaultBudget = 30 * time.Second
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

// Adapter turns SQS events into handler calls. Its fields are read-only once
// Handle is first called; Handle may run concurrently with itself.
type Adapter struct {
	Stage   string
	Handler postern.Handler
	Log     *slog.Logger
	// Visibility, when set, delays each retried record by its backoff (or
	// the delay the handler asked for) instead of the queue's visibility
	// timeout, and makes records that were not started visible again at
	// once. It must act on the queue the records came from.
	Visibility Visibility
	// DeadLetter, when set, receives records whose handler failed
	// permanently; they are then acknowledged. Without it they are reported
	// as failures and the queue's redrive policy dead-letters them.
	DeadLetter DeadLetter
	// Margin is the time kept in hand before the invocation deadline for
	// bookkeeping (rescheduling, dead-lettering, the response): handlers'
	// contexts end this long before the invocation does. Default
	// DefaultMargin (5 s).
	Margin time.Duration
	// Budget returns the longest a record's handler may take (for webhook
	// and relay jobs: the route's timeout plus what the stage does around
	// the call), given the record's decoded body. A record starts only if
	// its budget fits before the handler deadline (the invocation deadline
	// less Margin); a context without a deadline starts every record. nil,
	// or a result <= 0: DefaultBudget. See RouteBudget.
	Budget func(body []byte) time.Duration
	// Concurrency is how many records of a batch run at once; <= 1 runs
	// them one after another, in batch order. Standard queues keep no
	// order, so stages on them may run records concurrently.
	Concurrency int
	BaseDelay   time.Duration // default 5s
	MaxDelay    time.Duration // default 15m; SQS caps visibility at 12h
	// Metrics, when set, receives one CloudWatch Embedded Metric Format
	// line per batch (os.Stdout in Lambda).
	Metrics io.Writer
}

// outcome is what became of one record.
type outcome int

const (
	notStarted   outcome = iota // never handed to the handler: reported, visible again at once
	done                        // acknowledged
	retried                     // started, reported as a failure
	deadLettered                // sent to DeadLetter, acknowledged
)

type result struct {
	i   int
	out outcome
}

// Handle processes a batch: up to Concurrency records at a time, each
// started only while its budget fits before the deadline (see the package
// doc). It returns the records to retry; it never returns an error, which
// would send the whole batch back.
func (a *Adapter) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	start := time.Now()
	log := a.logger()
	margin := a.Margin
	if margin <= 0 {
		margin = DefaultMargin
	}
	// hctx is the handlers' context: it ends Margin before the invocation,
	// so a cancelled handler still leaves time to answer.
	hctx, cancel := ctx, context.CancelFunc(func() {})
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		hctx, cancel = context.WithDeadline(ctx, deadline.Add(-margin))
	}
	defer cancel()
	hdeadline, _ := hctx.Deadline()
	// bctx bounds the bookkeeping (rescheduling, dead-lettering): it ends
	// when Handle stops waiting for records, Margin/2 before the deadline.
	bctx, cancelB := ctx, context.CancelFunc(func() {})
	if hasDeadline {
		bctx, cancelB = context.WithDeadline(ctx, deadline.Add(-margin/2))
	}
	defer cancelB()

	outs := make([]outcome, len(ev.Records)) // written by this goroutine only
	slots := make(chan struct{}, max(a.Concurrency, 1))
	// Buffered for every record, so a worker never blocks on sending, even
	// one whose result is no longer awaited.
	results := make(chan result, len(ev.Records))
	inFlight := make(map[int]bool)
	skipped := 0
	resets := a.newResetter(bctx, log)
	skip := func(r events.SQSMessage) {
		skipped++
		resets.reset(r)
	}
	toldNever := false
	for i, r := range ev.Records {
		body, derr := decode(r)
		select {
		case slots <- struct{}{}:
		case <-hctx.Done():
			skip(r)
			continue
		}
		if hctx.Err() != nil {
			<-slots
			skip(r)
			continue
		}
		if hasDeadline && derr == nil {
			// A record that cannot be decoded needs no handler time.
			budget := a.budget(body, log)
			if left := time.Until(hdeadline); budget > left {
				<-slots
				skip(r)
				if whole := hdeadline.Sub(start); budget > whole && !toldNever {
					// No invocation of this length can ever run it: say so
					// loudly (once a batch), the fix is in the configuration.
					toldNever = true
					log.Error("record budget exceeds the function's whole time, so it can never run: raise the function's Timeout or lower the route's timeout",
						slog.String("stage", a.Stage), slog.String("job_id", r.MessageId),
						slog.Int64("budget_ms", budget.Milliseconds()), slog.Int64("available_ms", whole.Milliseconds()))
				}
				continue
			}
		}
		inFlight[i] = true
		go func() {
			out := retried
			defer func() {
				if p := recover(); p != nil {
					log.Error("record bookkeeping panic", slog.String("stage", a.Stage), slog.String("job_id", r.MessageId),
						slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
				}
				results <- result{i, out}
				<-slots
			}()
			out = a.one(bctx, hctx, r, body, derr)
		}()
	}

	if skipped > 0 {
		log.Warn("deadline near; returning records unprocessed", slog.String("stage", a.Stage), slog.Int("records", skipped))
	}
	resets.wait()

	a.collect(ctx, deadline, hasDeadline, margin, results, inFlight, outs, ev.Records, log)

	var resp events.SQSEventResponse
	counts := emfCounts{Records: len(ev.Records)}
	for i, o := range outs {
		switch o {
		case done:
			counts.Done++
		case deadLettered:
			counts.DeadLettered++
		case retried:
			counts.Retried++
		case notStarted:
			counts.NotStarted++
		}
		if o == retried || o == notStarted {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: ev.Records[i].MessageId})
		}
	}
	if a.Metrics != nil {
		counts.Duration = time.Since(start)
		if err := writeEMF(a.Metrics, a.Stage, time.Now(), counts); err != nil {
			log.Warn("metrics line", slog.String("stage", a.Stage), slog.String("error", err.Error()))
		}
	}
	return resp, nil
}

// collect waits for the started records' results. With a deadline, it stops
// waiting Margin/2 before it: a handler that ignores its context must not
// time the whole invocation out, which would bring back every record.
func (a *Adapter) collect(ctx context.Context, deadline time.Time, hasDeadline bool, margin time.Duration,
	results <-chan result, inFlight map[int]bool, outs []outcome, recs []events.SQSMessage, log *slog.Logger) {
	var giveUp <-chan time.Time
	if hasDeadline {
		t := time.NewTimer(time.Until(deadline.Add(-margin / 2)))
		defer t.Stop()
		giveUp = t.C
	}
	for len(inFlight) > 0 {
		select {
		case r := <-results:
			outs[r.i] = r.out
			delete(inFlight, r.i)
		case <-giveUp:
			for i := range inFlight {
				// Reported as failed; if the handler still finishes, the
				// record runs twice, which at-least-once allows.
				outs[i] = retried
				log.Error("handler did not return after its context ended; reporting the record failed",
					slog.String("stage", a.Stage), slog.String("job_id", recs[i].MessageId))
			}
			return
		}
	}
}

// resetter makes records that were not started visible again at once, as
// soon as they are skipped and a few at a time: they only lacked time, and
// otherwise would wait out the queue's visibility timeout (15 minutes on
// Postern's queues).
type resetter struct {
	a   *Adapter
	ctx context.Context
	log *slog.Logger
	wg  sync.WaitGroup
	sem chan struct{}
}

func (a *Adapter) newResetter(ctx context.Context, log *slog.Logger) *resetter {
	return &resetter{a: a, ctx: ctx, log: log, sem: make(chan struct{}, 8)}
}

func (rs *resetter) reset(r events.SQSMessage) {
	if rs.a.Visibility == nil {
		return
	}
	rs.sem <- struct{}{}
	rs.wg.Go(func() {
		defer func() {
			if p := recover(); p != nil {
				rs.log.Error("visibility reset panic", slog.String("stage", rs.a.Stage), slog.String("job_id", r.MessageId), slog.Any("panic", p))
			}
			<-rs.sem
		}()
		if err := rs.a.Visibility.ChangeVisibility(rs.ctx, r.ReceiptHandle, 0); err != nil {
			rs.log.Warn("visibility reset failed; the visibility timeout applies", slog.String("stage", rs.a.Stage),
				slog.String("job_id", r.MessageId), slog.String("error", err.Error()))
		}
	})
}

func (rs *resetter) wait() { rs.wg.Wait() }

func decode(r events.SQSMessage) ([]byte, error) {
	var enc string
	if v, ok := r.MessageAttributes[sqsqueue.BodyEncodingAttribute]; ok && v.StringValue != nil {
		enc = *v.StringValue
	}
	body, err := sqsqueue.DecodeBody(r.Body, enc)
	if err != nil {
		return nil, postern.Permanent(fmt.Errorf("record %s: %w", r.MessageId, err))
	}
	return body, nil
}

// budget is the record's worst-case handler time; a Budget that panics
// costs the record its own budget, not the batch.
func (a *Adapter) budget(body []byte, log *slog.Logger) (d time.Duration) {
	if a.Budget == nil {
		return DefaultBudget
	}
	defer func() {
		if p := recover(); p != nil {
			log.Error("budget panic", slog.String("stage", a.Stage), slog.Any("panic", p))
			d = DefaultBudget
		}
	}()
	if d = a.Budget(body); d <= 0 {
		d = DefaultBudget
	}
	return d
}

// one handles a record under hctx and settles it under ctx (the
// bookkeeping context, which outlives hctx by Margin/2).
func (a *Adapter) one(ctx, hctx context.Context, r events.SQSMessage, body []byte, err error) outcome {
	attempt, _ := strconv.Atoi(r.Attributes["ApproximateReceiveCount"])
	log := a.logger().With(slog.String("stage", a.Stage), slog.String("job_id", r.MessageId), slog.Int("attempt", attempt))
	if err == nil {
		err = a.call(hctx, postern.Job{Body: body, Attempt: max(attempt, 1)})
	}
	cut := err != nil && hctx.Err() != nil
	switch {
	case err == nil:
		return done
	case postern.IsPermanent(err) && !cut:
		log.Error("job failed permanently", slog.String("error", err.Error()))
		if a.DeadLetter == nil {
			return retried
		}
		if _, derr := a.DeadLetter.Send(ctx, []byte(r.Body), 0); derr != nil {
			log.Error("dead-letter failed; leaving the record to the redrive policy", slog.String("error", derr.Error()))
			return retried
		}
		return deadLettered
	default:
		// A handler cut short by the deadline only lacked time: whatever
		// it made of that, the record is retried.
		d, ok := postern.RetryDelay(err)
		if !ok {
			d = a.backoff(attempt)
		}
		msg := "job failed; will retry"
		if cut {
			msg = "job cut short by the invocation deadline; will retry"
		}
		log.Warn(msg, slog.String("error", err.Error()), slog.Int64("retry_in_ms", d.Milliseconds()))
		if a.Visibility != nil {
			if verr := a.Visibility.ChangeVisibility(ctx, r.ReceiptHandle, d); verr != nil {
				log.Warn("reschedule failed; the visibility timeout applies", slog.String("error", verr.Error()))
			}
		}
		return retried
	}
}

func (a *Adapter) call(ctx context.Context, job postern.Job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			a.logger().Error("handler panic", slog.String("stage", a.Stage), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("%s handler panic: %v", a.Stage, p)
		}
	}()
	return a.Handler.Handle(ctx, job)
}

func (a *Adapter) logger() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
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
