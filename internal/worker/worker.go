// Package worker drives a stage handler from a queue in local mode, the way
// Lambda's SQS event source drives it on AWS: receive, handle, then ack,
// retry later with backoff, or dead-letter.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue"
	"github.com/postern/postern/internal/trace"
)

// DeadLetter takes jobs that can never succeed.
type DeadLetter interface {
	Send(ctx context.Context, body []byte, delay time.Duration) (string, error)
}

// Worker polls one queue and hands each message to one handler.
type Worker struct {
	Stage   string
	Queue   queue.Queue
	Handler postern.Handler
	// DeadLetter receives jobs whose handler returned a permanent error. The
	// queue itself dead-letters jobs that keep failing temporarily.
	DeadLetter DeadLetter
	Log        *slog.Logger

	Concurrency int           // parallel jobs; default 1
	Visibility  time.Duration // how long a job is hidden while handled; default 5m
	Wait        time.Duration // long-poll wait; default 1s
	BaseDelay   time.Duration // first retry delay bound; default 5s
	MaxDelay    time.Duration // retry delay cap; default 15m
	// Grace bounds the jobs in hand when Run's ctx ends: Grace later their
	// contexts are cancelled, and a job cut off that way is left to come
	// back (at the next start, or after its visibility timeout). Zero
	// leaves each job its own deadline (nine tenths of Visibility).
	Grace time.Duration

	// Observe, when set, is told each job's outcome (done, retry,
	// dead_letter; failed or expired when the handler settled the job with
	// a failure notice for the message, see trace.NoteOutcome) and
	// duration, for metrics.
	Observe func(stage, outcome string, d time.Duration)
	// Yield, when set, is called before each job with the time it was
	// queued; it may hold the job back (the gateway's burst priority).
	Yield func(ctx context.Context, queuedAt time.Time)

	running     context.Context // Run's, for reschedules that outlive a job
	reschedules *sync.WaitGroup
}

// Run polls until ctx ends, then lets jobs in hand finish (each is bounded
// by its own deadline, and by Grace) and returns.
func (w *Worker) Run(ctx context.Context) error {
	n := max(w.Concurrency, 1)
	var wg sync.WaitGroup
	w.running = ctx
	w.reschedules = &wg
	jobs, cutOff := context.WithCancel(context.Background())
	defer cutOff()
	if w.Grace > 0 {
		stop := context.AfterFunc(ctx, func() { time.AfterFunc(w.Grace, cutOff) })
		defer stop()
	}
	for range n {
		wg.Go(func() { w.loop(ctx, jobs) })
	}
	wg.Wait()
	return nil
}

func (w *Worker) visibility() time.Duration { return cmpOr(w.Visibility, 5*time.Minute) }

func (w *Worker) loop(ctx, jobs context.Context) {
	for ctx.Err() == nil {
		msgs, err := w.Queue.Receive(ctx, 1, w.visibility(), cmpOr(w.Wait, time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.Log.Error("receive failed", slog.String("stage", w.Stage), slog.String("error", err.Error()))
			sleep(ctx, time.Second)
			continue
		}
		for _, m := range msgs {
			w.process(jobs, m)
		}
	}
}

// process handles one message. It runs on jobs, a context detached from
// Run's so that shutdown lets a job in hand finish rather than cutting it
// off midway, until Grace is over.
func (w *Worker) process(jobs context.Context, m queue.Message) {
	ctx, cancel := context.WithTimeout(jobs, w.visibility()*9/10)
	defer cancel()
	if w.Yield != nil {
		w.Yield(ctx, m.SentAt)
	}
	start := time.Now()
	// The handler's verdict on the message: a job that ends without error
	// may still have failed the message (refused for good, DSN queued).
	hctx, notes := trace.WithNotes(ctx)
	err := w.handle(hctx, postern.Job{Body: m.Body, Attempt: m.ReceiveCount})
	log := w.Log.With(slog.String("stage", w.Stage), slog.String("job_id", m.ID), slog.Int("attempt", m.ReceiveCount))
	if err != nil && jobs.Err() != nil {
		// Shutdown's grace is over. The queue still holds the job: it
		// comes back at the next start (or after its visibility timeout).
		log.Warn("job cut off by shutdown; it will run again", slog.String("error", err.Error()),
			slog.Int64("latency_ms", time.Since(start).Milliseconds()))
		if w.Observe != nil {
			w.Observe(w.Stage, "retry", time.Since(start))
		}
		return
	}
	if w.Observe != nil {
		outcome := "retry"
		switch {
		case err == nil:
			outcome = "done"
			if v := notes.Outcome(); v == trace.EventFailed || v == trace.EventExpired {
				outcome = v
			}
		case postern.IsPermanent(err):
			outcome = "dead_letter"
		}
		w.Observe(w.Stage, outcome, time.Since(start))
	}
	switch {
	case err == nil:
		if ctx.Err() != nil {
			// Done just as the grace ended: the ack still gets a moment,
			// so the job is not run again for nothing.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
		}
		if derr := w.Queue.Delete(ctx, m.Receipt); derr != nil {
			// The job comes back after its visibility timeout and is handled
			// again; stages are idempotent.
			log.Warn("ack failed", slog.String("error", derr.Error()))
		}
	case postern.IsPermanent(err):
		log.Error("job failed permanently", slog.String("error", err.Error()))
		if w.DeadLetter == nil {
			w.retryLater(ctx, log, m, w.maxDelay())
			return
		}
		if _, derr := w.DeadLetter.Send(ctx, m.Body, 0); derr != nil {
			log.Error("dead-letter failed; retrying later", slog.String("error", derr.Error()))
			w.retryLater(ctx, log, m, w.backoff(m.ReceiveCount))
			return
		}
		if derr := w.Queue.Delete(ctx, m.Receipt); derr != nil {
			log.Warn("ack after dead-letter failed", slog.String("error", derr.Error()))
		}
	default:
		d, ok := postern.RetryDelay(err)
		if !ok {
			d = w.backoff(m.ReceiveCount)
		}
		log.Warn("job failed; will retry", slog.String("error", err.Error()),
			slog.Int64("retry_in_ms", d.Milliseconds()), slog.Int64("latency_ms", time.Since(start).Milliseconds()))
		w.retryLater(ctx, log, m, d)
	}
}

func (w *Worker) retryLater(ctx context.Context, log *slog.Logger, m queue.Message, d time.Duration) {
	if err := w.Queue.ChangeVisibility(ctx, m.Receipt, d); err != nil {
		// The visibility timeout would bring the job back, but only
		// minutes later: a full disk usually frees up sooner, so keep
		// asking for the job back at its due time until the queue takes it.
		log.Warn("reschedule failed; retrying", slog.String("error", err.Error()))
		run := w.running
		if run == nil || w.reschedules == nil {
			return
		}
		w.reschedules.Go(func() {
			deadline := time.Now().Add(w.visibility())
			wait := max(d, time.Second)
			for time.Now().Before(deadline) {
				select {
				case <-run.Done():
					return
				case <-time.After(wait):
				}
				if w.Queue.ChangeVisibility(run, m.Receipt, 0) == nil {
					return
				}
				wait = time.Second
			}
		})
	}
}

// handle calls the handler, turning a panic into a temporary error so one
// bad job never takes the process down.
func (w *Worker) handle(ctx context.Context, job postern.Job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			w.Log.Error("handler panic", slog.String("stage", w.Stage), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("%s handler panic: %v", w.Stage, p)
		}
	}()
	return w.Handler.Handle(ctx, job)
}

func (w *Worker) maxDelay() time.Duration { return cmpOr(w.MaxDelay, 15*time.Minute) }

// backoff is the delay before the next try of a job on its attempt-th
// failure.
func (w *Worker) backoff(attempt int) time.Duration {
	return postern.Backoff(attempt, cmpOr(w.BaseDelay, 5*time.Second), w.maxDelay())
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
