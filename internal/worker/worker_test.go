package worker

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue/fsqueue"
	"github.com/postern/postern/internal/trace"
)

func queues(t *testing.T) (q, dlq *fsqueue.Queue) {
	t.Helper()
	db, err := fsqueue.Open(filepath.Join(t.TempDir(), "q.db"), fsqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if dlq, err = db.Queue("jobs-dlq", fsqueue.Config{}); err != nil {
		t.Fatal(err)
	}
	if q, err = db.Queue("jobs", fsqueue.Config{MaxReceives: 50, DeadLetter: "jobs-dlq"}); err != nil {
		t.Fatal(err)
	}
	return q, dlq
}

// run drives the worker until cond holds or the test times out.
func run(t *testing.T, w *Worker, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOutcomes(t *testing.T) {
	t.Parallel()
	q, dlq := queues(t)
	var mu sync.Mutex
	attempts := map[string][]int{}
	h := postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("handler context has no deadline")
		}
		mu.Lock()
		attempts[string(job.Body)] = append(attempts[string(job.Body)], job.Attempt)
		n := len(attempts[string(job.Body)])
		mu.Unlock()
		switch string(job.Body) {
		case "flaky":
			if n < 3 {
				return errors.New("temporarily down")
			}
		case "later":
			if n < 2 {
				return postern.RetryAfter(errors.New("429"), 10*time.Millisecond)
			}
		case "bad":
			return postern.Permanent(errors.New("cannot ever work"))
		case "panics":
			if n < 2 {
				panic("handler bug")
			}
		}
		return nil
	})
	for _, b := range []string{"ok", "flaky", "later", "bad", "panics"} {
		if _, err := q.Send(t.Context(), []byte(b), 0); err != nil {
			t.Fatal(err)
		}
	}
	w := &Worker{Stage: "test", Queue: q, Handler: h, DeadLetter: dlq, Log: slog.New(slog.DiscardHandler),
		Concurrency: 2, Visibility: 5 * time.Second, Wait: 100 * time.Millisecond, BaseDelay: 20 * time.Millisecond, MaxDelay: 50 * time.Millisecond}
	run(t, w, func() bool {
		s, err := q.Stats(context.Background())
		return err == nil && s.Visible+s.InFlight+s.Delayed == 0
	})
	mu.Lock()
	defer mu.Unlock()
	want := map[string][]int{"ok": {1}, "flaky": {1, 2, 3}, "later": {1, 2}, "bad": {1}, "panics": {1, 2}}
	for k, v := range want {
		if len(attempts[k]) != len(v) || attempts[k][len(v)-1] != v[len(v)-1] {
			t.Errorf("%s: attempts %v, want %v", k, attempts[k], v)
		}
	}
	got, err := dlq.Receive(context.Background(), 10, time.Minute, 0)
	if err != nil || len(got) != 1 || string(got[0].Body) != "bad" {
		t.Fatalf("dead-letter queue holds %+v, %v; want only the permanent failure", got, err)
	}
}

func TestBackoffIsBoundedFullJitter(t *testing.T) {
	t.Parallel()
	w := &Worker{BaseDelay: time.Second, MaxDelay: 8 * time.Second}
	for attempt, bound := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 10: 8 * time.Second} {
		var maxSeen time.Duration
		for range 200 {
			d := w.backoff(attempt)
			if d < 0 || d > bound {
				t.Fatalf("attempt %d: delay %v outside [0, %v]", attempt, d, bound)
			}
			maxSeen = max(maxSeen, d)
		}
		if maxSeen < bound/2 {
			t.Errorf("attempt %d: delays never came near the bound %v (max %v): not jittered over the full range", attempt, bound, maxSeen)
		}
	}
}

// flakyReschedule fails the first ChangeVisibility, as a full disk would.
type flakyReschedule struct {
	*fsqueue.Queue
	mu     sync.Mutex
	failed bool
}

func (f *flakyReschedule) ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.failed {
		f.failed = true
		return errors.New("injected: no space left on device")
	}
	return f.Queue.ChangeVisibility(ctx, receipt, d)
}

// A job whose reschedule failed comes back about when it was due, not
// only when its (long) visibility timeout ends.
func TestFailedRescheduleIsRetried(t *testing.T) {
	t.Parallel()
	q, dlq := queues(t)
	var mu sync.Mutex
	var at []time.Time
	h := postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Now())
		if len(at) == 1 {
			return postern.RetryAfter(errors.New("busy"), 10*time.Millisecond)
		}
		return nil
	})
	if _, err := q.Send(t.Context(), []byte("job"), 0); err != nil {
		t.Fatal(err)
	}
	w := &Worker{Stage: "test", Queue: &flakyReschedule{Queue: q}, Handler: h, DeadLetter: dlq, Log: slog.New(slog.DiscardHandler),
		Visibility: time.Minute, Wait: 100 * time.Millisecond}
	run(t, w, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(at) == 2
	})
	if d := at[1].Sub(at[0]); d > 10*time.Second {
		t.Fatalf("retried after %s; the visibility timeout is a minute, the retry was due in 1s", d)
	}
}

// When Run's ctx ends, a job in hand may finish within Grace; one that
// takes longer is cut off, neither acked nor dead-lettered, and Run
// returns.
func TestGraceBoundsJobsInHand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		finish  bool // the job finishes once shutdown has begun
		inQueue int  // jobs left in flight afterwards
	}{
		{name: "finishes within grace", finish: true, inQueue: 0},
		{name: "cut off at the end of grace", finish: false, inQueue: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, dlq := queues(t)
			started := make(chan struct{})
			release := make(chan struct{})
			var handlerErr error
			h := postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
				close(started)
				select {
				case <-release:
					return nil
				case <-ctx.Done():
					handlerErr = ctx.Err()
					return ctx.Err()
				}
			})
			if _, err := q.Send(t.Context(), []byte("job"), 0); err != nil {
				t.Fatal(err)
			}
			grace := time.Hour
			if !tc.finish {
				grace = 50 * time.Millisecond
			}
			w := &Worker{Stage: "test", Queue: q, Handler: h, DeadLetter: dlq, Log: slog.New(slog.DiscardHandler),
				Visibility: time.Hour, Wait: 100 * time.Millisecond, Grace: grace}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { w.Run(ctx); close(done) }()
			<-started
			cancel()
			if tc.finish {
				close(release)
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run still waiting for a job in hand")
			}
			if !tc.finish && !errors.Is(handlerErr, context.Canceled) {
				t.Fatalf("handler ended with %v, want its context cancelled", handlerErr)
			}
			s, err := q.Stats(context.Background())
			if err != nil || s.InFlight != tc.inQueue || s.Visible+s.Delayed != 0 {
				t.Fatalf("queue after Run: %+v, %v; want %d in flight", s, err, tc.inQueue)
			}
			if d, err := dlq.Stats(context.Background()); err != nil || d.Visible != 0 {
				t.Fatalf("dead-letter queue: %+v, %v; want empty", d, err)
			}
		})
	}
}

// A job the handler settles by queueing a failure notice ends without
// error, but it is not counted as done: the message failed.
func TestObservedOutcomeIsTheHandlersVerdict(t *testing.T) {
	t.Parallel()
	q, dlq := queues(t)
	h := postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		switch string(job.Body) {
		case "refused":
			trace.NoteOutcome(ctx, trace.EventFailed, 410, "http; 410 Gone")
		case "expired":
			trace.NoteOutcome(ctx, trace.EventExpired, 503, "http; 503 Service Unavailable")
		case "delivered":
			trace.NoteOutcome(ctx, trace.EventDone, 200, "")
		}
		return nil
	})
	var mu sync.Mutex
	seen := map[string]int{}
	for _, b := range []string{"refused", "expired", "delivered", "plain"} {
		if _, err := q.Send(t.Context(), []byte(b), 0); err != nil {
			t.Fatal(err)
		}
	}
	w := &Worker{Stage: "webhook", Queue: q, Handler: h, DeadLetter: dlq, Log: slog.New(slog.DiscardHandler),
		Wait: 100 * time.Millisecond,
		Observe: func(stage, outcome string, _ time.Duration) {
			mu.Lock()
			seen[outcome]++
			mu.Unlock()
		}}
	run(t, w, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["failed"]+seen["expired"]+seen["done"] >= 4
	})
	mu.Lock()
	defer mu.Unlock()
	if seen["failed"] != 1 || seen["expired"] != 1 || seen["done"] != 2 {
		t.Fatalf("observed outcomes %v, want failed 1, expired 1, done 2", seen)
	}
}
