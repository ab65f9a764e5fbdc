package lambdasqs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/postern/postern/internal/postern"
)

// Times here are the issue's scaled down ten times: a 16 s function timeout
// becomes 1.6 s, a 9 s webhook call 0.9 s. The assertions are about which
// records ran and what was reported, not about how long anything took.

// invoke drives a.Handle as Lambda does (JSON through lambda.NewHandler)
// under ctx, and reports whether the invocation ended before ctx's
// deadline, as it must to be answered at all.
func invoke(t *testing.T, ctx context.Context, a *Adapter, ev events.SQSEvent) (failed []string, inTime bool) {
	t.Helper()
	payload, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	out, err := lambda.NewHandler(a.Handle).Invoke(ctx, payload)
	inTime = ctx.Err() == nil
	if err != nil {
		t.Fatal(err)
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	slices.Sort(failed)
	return failed, inTime
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// webhookCall stands for a webhook call of d: it ends early, with the
// context's error, when its context does.
func webhookCall(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("webhook POST: %w", ctx.Err())
	}
}

// The issue's case: a batch of 3 records, each a call close to the
// function's timeout. Before, the adapter started the second record with
// too little time left, the invocation timed out, and all three came back,
// one already delivered. Now no delivered record is reported as a failure,
// the records not started are made visible again at once, and the
// handler's context ends before the invocation's.
func TestIssueCaseNoDeliveredRecordComesBack(t *testing.T) {
	t.Parallel()
	const (
		timeout = 1600 * time.Millisecond // the function's
		call    = 900 * time.Millisecond  // each webhook call
		margin  = 300 * time.Millisecond
	)
	for _, c := range []struct {
		concurrency   int
		wantDelivered []string
	}{
		{1, []string{"1"}},           // one at a time: only the first fits
		{3, []string{"1", "2", "3"}}, // side by side: all three fit
	} {
		t.Run(fmt.Sprintf("concurrency=%d", c.concurrency), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			invDeadline, _ := ctx.Deadline()

			var mu sync.Mutex
			var delivered []string
			var handlerDeadlines []time.Time
			h := postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
				var j postern.WebhookJob
				if err := json.Unmarshal(job.Body, &j); err != nil {
					return postern.Permanent(err)
				}
				dl, _ := ctx.Deadline()
				mu.Lock()
				handlerDeadlines = append(handlerDeadlines, dl)
				mu.Unlock()
				if err := webhookCall(ctx, call); err != nil {
					return err
				}
				mu.Lock()
				delivered = append(delivered, string(j.ID))
				mu.Unlock()
				return nil
			})
			vis := &recordingVis{got: map[string]time.Duration{}}
			a := &Adapter{Stage: "webhook", Handler: h, Log: testLog(t), Visibility: vis, Margin: margin,
				Concurrency: c.concurrency,
				// The route's timeout is the call's worst case; 100 ms for
				// the work around it.
				Budget: RouteBudget(func(string) time.Duration { return call }, 100*time.Millisecond)}
			var recs []events.SQSMessage
			for _, id := range []string{"1", "2", "3"} {
				recs = append(recs, rec(id, `{"v":1,"id":"`+id+`","route":"app"}`, 1))
			}
			failed, inTime := invoke(t, ctx, a, events.SQSEvent{Records: recs})

			if !inTime {
				t.Error("the invocation ran past its deadline (Lambda would bring back the whole batch)")
			}
			mu.Lock()
			defer mu.Unlock()
			slices.Sort(delivered)
			for _, id := range delivered {
				if slices.Contains(failed, id) {
					t.Errorf("record %s was delivered and is reported as a failure (a duplicate)", id)
				}
			}
			if !equal(delivered, c.wantDelivered) {
				t.Errorf("delivered %v, want %v", delivered, c.wantDelivered)
			}
			for _, id := range []string{"1", "2", "3"} {
				if slices.Contains(delivered, id) {
					continue
				}
				if !slices.Contains(failed, id) {
					t.Errorf("record %s neither delivered nor reported", id)
				}
				if d, ok := vis.changed("rh-" + id); !ok || d != 0 {
					t.Errorf("record %s not started: visibility %v (set %v), want reset to 0", id, d, ok)
				}
			}
			if len(handlerDeadlines) == 0 {
				t.Fatal("no handler ran")
			}
			for _, dl := range handlerDeadlines {
				if !dl.Equal(invDeadline.Add(-margin)) {
					t.Errorf("handler deadline %v before the invocation's, want the margin %v", invDeadline.Sub(dl), margin)
				}
			}
		})
	}
}

// A budget larger than the time left starts nothing; a record with a small
// budget further on still starts.
func TestBudgetLargerThanTimeLeftStartsNothing(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var ran []string
	h := postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		mu.Lock()
		defer mu.Unlock()
		ran = append(ran, string(job.Body))
		return nil
	})
	vis := &recordingVis{got: map[string]time.Duration{}}
	var metrics bytes.Buffer
	a := &Adapter{Stage: "webhook", Handler: h, Log: testLog(t), Visibility: vis, Margin: 100 * time.Millisecond, Metrics: &metrics,
		Budget: func(body []byte) time.Duration {
			if string(body) == "small" {
				return time.Millisecond
			}
			return 10 * time.Second
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	failed, inTime := invoke(t, ctx, a, events.SQSEvent{Records: []events.SQSMessage{rec("1", "big", 1), rec("2", "small", 1), rec("3", "big", 1)}})
	if !inTime {
		t.Error("the invocation ran past its deadline")
	}
	mu.Lock()
	defer mu.Unlock()
	if !equal(ran, []string{"small"}) {
		t.Errorf("ran %v, want only the record whose budget fits", ran)
	}
	if !equal(failed, []string{"1", "3"}) {
		t.Errorf("failures %v, want [1 3]", failed)
	}
	for _, id := range []string{"1", "3"} {
		if d, ok := vis.changed("rh-" + id); !ok || d != 0 {
			t.Errorf("record %s: visibility %v (set %v), want reset to 0", id, d, ok)
		}
	}
	if _, ok := vis.changed("rh-2"); ok {
		t.Error("the done record's visibility was changed")
	}
	var line struct{ JobsDone, JobsRetried, JobsNotStarted, BatchRecords int }
	if err := json.Unmarshal(metrics.Bytes(), &line); err != nil {
		t.Fatalf("EMF line %q: %v", metrics.String(), err)
	}
	if line.JobsDone != 1 || line.JobsRetried != 0 || line.JobsNotStarted != 2 || line.BatchRecords != 3 {
		t.Errorf("EMF counts %+v, want 1 done, 0 retried, 2 not started of 3", line)
	}
}

// barrier holds each handler until n of them are in flight together, and
// records the most that ever were.
type barrier struct {
	n            int
	mu           sync.Mutex
	now, most    int
	full         chan struct{}
	fullOnce     sync.Once
	entered, out int
}

func newBarrier(n int) *barrier { return &barrier{n: n, full: make(chan struct{})} }

// enter waits until n handlers are in at once (or ctx ends); leave must
// follow.
func (b *barrier) enter(ctx context.Context) error {
	b.mu.Lock()
	b.now++
	b.entered++
	b.most = max(b.most, b.now)
	if b.now >= b.n {
		b.fullOnce.Do(func() { close(b.full) })
	}
	b.mu.Unlock()
	select {
	case <-b.full:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("only %d handlers overlapped: %w", b.n, ctx.Err())
	}
}

func (b *barrier) leave() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.now--
}

func (b *barrier) max() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.most
}

// holder keeps every handler in flight until the test releases it, and
// releases one only while all slots are taken (or every record has
// started), so an adapter that starts more than its bound is caught with
// the extra records inside.
type holder struct {
	mu                 sync.Mutex
	now, most, entered int
	total, conc        int
	changed, release   chan struct{}
}

func newHolder(total, conc int) *holder {
	return &holder{total: total, conc: conc, changed: make(chan struct{}, 1), release: make(chan struct{})}
}

func (h *holder) notify() {
	select {
	case h.changed <- struct{}{}:
	default: // a wake-up is already pending; drive re-reads the state
	}
}

func (h *holder) handle(ctx context.Context, _ postern.Job) error {
	h.mu.Lock()
	h.now++
	h.entered++
	h.most = max(h.most, h.now)
	h.mu.Unlock()
	h.notify()
	defer func() {
		h.mu.Lock()
		h.now--
		h.mu.Unlock()
		h.notify()
	}()
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drive releases the handlers one at a time until all have been, or ctx
// ends.
func (h *holder) drive(ctx context.Context) {
	for released := 0; released < h.total; {
		select {
		case <-h.changed:
		case <-ctx.Done():
			return
		}
		h.mu.Lock()
		full := h.now >= h.conc || (h.entered == h.total && h.now > 0)
		h.mu.Unlock()
		if !full {
			continue
		}
		select {
		case h.release <- struct{}{}:
			released++
			h.notify() // look again: more may be held
		case <-ctx.Done():
			return
		}
	}
}

// Records of a batch overlap, Concurrency at most at a time.
func TestConcurrencyOverlapsRecordsWithinTheBound(t *testing.T) {
	t.Parallel()
	const conc, total = 3, 10
	hold := newHolder(total, conc)
	a := &Adapter{Stage: "webhook", Handler: postern.HandlerFunc(hold.handle), Log: testLog(t), Concurrency: conc, Margin: time.Second,
		Budget: func([]byte) time.Duration { return time.Second }}
	var recs []events.SQSMessage
	for i := range total {
		recs = append(recs, rec(fmt.Sprint(i), "x", 1))
	}
	// The deadline only bounds a failing run.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go hold.drive(ctx)
	failed, _ := invoke(t, ctx, a, events.SQSEvent{Records: recs})
	if len(failed) != 0 {
		t.Errorf("failures %v", failed)
	}
	hold.mu.Lock()
	defer hold.mu.Unlock()
	if hold.most != conc || hold.entered != total {
		t.Errorf("at most %d of %d records in flight, want %d of %d", hold.most, hold.entered, conc, total)
	}
}

// A panic in one of several concurrent records fails that record only.
func TestPanicInOneConcurrentRecordFailsOnlyIt(t *testing.T) {
	t.Parallel()
	const conc = 4
	b := newBarrier(conc)
	h := postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		defer b.leave()
		if err := b.enter(ctx); err != nil {
			return err
		}
		if string(job.Body) == "panic" {
			panic("boom")
		}
		return nil
	})
	vis := &recordingVis{got: map[string]time.Duration{}}
	a := &Adapter{Stage: "webhook", Handler: h, Log: testLog(t), Visibility: vis, Concurrency: conc,
		Budget: func([]byte) time.Duration { return time.Second }}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	failed, _ := invoke(t, ctx, a, events.SQSEvent{Records: []events.SQSMessage{rec("1", "ok", 1), rec("2", "panic", 1), rec("3", "ok", 1), rec("4", "ok", 1)}})
	if !equal(failed, []string{"2"}) {
		t.Errorf("failures %v, want [2]", failed)
	}
	if d, ok := vis.changed("rh-2"); !ok || d > 5*time.Second {
		t.Errorf("panicked record rescheduled in %v (set %v), want its first backoff", d, ok)
	}
	if got := b.max(); got != conc {
		t.Errorf("at most %d records in flight, want %d", got, conc)
	}
}

// Permanent failures among concurrent records still go to the dead-letter
// queue, and are then acknowledged.
func TestPermanentErrorsGoToDeadLetterConcurrently(t *testing.T) {
	t.Parallel()
	h := postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		if bytes.HasPrefix(job.Body, []byte("perm")) {
			return postern.Permanent(errors.New("410 Gone"))
		}
		return nil
	})
	dlq := &recordingDLQ{}
	var metrics bytes.Buffer
	a := &Adapter{Stage: "webhook", Handler: h, Log: testLog(t), DeadLetter: dlq, Concurrency: 4, Metrics: &metrics}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	failed, _ := invoke(t, ctx, a, events.SQSEvent{Records: []events.SQSMessage{
		rec("1", "perm-a", 1), rec("2", "ok", 1), rec("3", "perm-b", 1), rec("4", "ok", 1), rec("5", "perm-c", 1)}})
	if len(failed) != 0 {
		t.Errorf("failures %v, want none (dead-lettered records are acknowledged)", failed)
	}
	got := dlq.sent()
	slices.Sort(got)
	if !equal(got, []string{"perm-a", "perm-b", "perm-c"}) {
		t.Errorf("dead-lettered %v", got)
	}
	var line struct{ JobsDone, JobsDeadLettered, JobsRetried, JobsNotStarted int }
	if err := json.Unmarshal(metrics.Bytes(), &line); err != nil {
		t.Fatalf("EMF line %q: %v", metrics.String(), err)
	}
	if line.JobsDone != 2 || line.JobsDeadLettered != 3 || line.JobsRetried != 0 || line.JobsNotStarted != 0 {
		t.Errorf("EMF counts %+v", line)
	}
}

// A handler cut short by the deadline is retried even when it calls the
// cut permanent, and the invocation still answers in time.
func TestCutShortByDeadlineIsRetried(t *testing.T) {
	t.Parallel()
	h := postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		<-ctx.Done() // a call that outlasts its budget
		return postern.Permanent(ctx.Err())
	})
	vis := &recordingVis{got: map[string]time.Duration{}}
	dlq := &recordingDLQ{}
	a := &Adapter{Stage: "webhook", Handler: h, Log: testLog(t), Visibility: vis, DeadLetter: dlq, Margin: 500 * time.Millisecond,
		Budget: func([]byte) time.Duration { return 100 * time.Millisecond }}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	failed, inTime := invoke(t, ctx, a, events.SQSEvent{Records: []events.SQSMessage{rec("1", "x", 1)}})
	if !inTime {
		t.Error("the invocation ran past its deadline")
	}
	if !equal(failed, []string{"1"}) {
		t.Errorf("failures %v, want [1]", failed)
	}
	if got := dlq.sent(); len(got) != 0 {
		t.Errorf("a record cut short by the deadline was dead-lettered: %v", got)
	}
	if _, ok := vis.changed("rh-1"); !ok {
		t.Error("the cut record was not rescheduled")
	}
}

// A handler that ignores its context is given up on Margin/2 before the
// deadline: the invocation answers, the record is reported.
func TestHandlerIgnoringContextIsGivenUpOn(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h := postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		if string(job.Body) == "stuck" {
			// Long enough to outlast the invocation, bounded so that an
			// adapter that waits for it fails rather than hangs.
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
		}
		return nil
	})
	a := &Adapter{Stage: "webhook", Handler: h, Log: testLog(t), Concurrency: 2, Margin: time.Second,
		Budget: func([]byte) time.Duration { return 100 * time.Millisecond }}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	failed, inTime := invoke(t, ctx, a, events.SQSEvent{Records: []events.SQSMessage{rec("1", "stuck", 1), rec("2", "ok", 1)}})
	if !inTime {
		t.Error("the invocation ran past its deadline")
	}
	if !equal(failed, []string{"1"}) {
		t.Errorf("failures %v, want [1]", failed)
	}
}

func TestRouteBudget(t *testing.T) {
	t.Parallel()
	timeouts := map[string]time.Duration{"slow": 90 * time.Second, "zero": 0}
	b := RouteBudget(func(r string) time.Duration { return timeouts[r] }, 10*time.Second)
	for body, want := range map[string]time.Duration{
		`{"v":1,"route":"slow"}`: 100 * time.Second,
		`{"v":1,"route":"zero"}`: DefaultBudget + 10*time.Second,
		`{"v":1,"route":"gone"}`: DefaultBudget + 10*time.Second,
		`{"v":1}`:                DefaultBudget + 10*time.Second,
		`not json`:               DefaultBudget + 10*time.Second,
	} {
		if got := b([]byte(body)); got != want {
			t.Errorf("budget of %s = %v, want %v", body, got, want)
		}
	}
}
