package relay_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/postern/postern/internal/dsn"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/trace"
)

// A recipient that keeps being deferred is retried with backoff, but no
// retry is scheduled past the route's max age nor, while the delay notice
// is owed, past its time: the notice leaves at delay_notice and the expiry
// DSN at max_age, each within a second (the issue saw delay_notice 20s come
// after 65s). The clock is fake: each retry runs exactly when scheduled.
func TestRelayRetriesKeepDeadlines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                string
		maxAge, delayNotice time.Duration
		retryAfter          time.Duration // the remote's hint
	}{
		{"short", 2 * time.Minute, 20 * time.Second, 0},
		{"remote asks for an hour", 2 * time.Minute, 20 * time.Second, time.Hour},
		{"day", 24 * time.Hour, 4 * time.Hour, 0},
		{"seconds", 2 * time.Second, time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := &fakeTransport{}
			busy := reply450
			busy.RetryAfter = tc.retryAfter
			tr.set("busy@example.com", busy)
			f := newFixture(t, tr)
			f.job.Recipients = []string{"busy@example.com"}
			f.route.MaxAge, f.route.DelayNotice = tc.maxAge, tc.delayNotice
			f.now = testCreated
			h := f.handler(t).With(relay.WithBackoff(time.Minute, time.Hour))
			deadline := testCreated.Add(tc.maxAge)
			for attempt := 1; ; attempt++ {
				if attempt > 200 {
					t.Fatal("never expired")
				}
				err := f.handle(t, h, attempt)
				if err == nil {
					break
				}
				d, ok := postern.RetryDelay(err)
				if !ok {
					t.Fatalf("attempt %d: %v carries no retry delay", attempt, err)
				}
				next := f.now.Add(d)
				if next.After(deadline) && d > time.Second {
					t.Fatalf("attempt %d at +%v scheduled the next at +%v, past max age %v", attempt, f.now.Sub(testCreated), next.Sub(testCreated), tc.maxAge)
				}
				f.now = next
			}
			jobs := f.dsnJobs(t)
			if len(jobs) != 2 || jobs[0].Action != dsn.ActionDelayed || jobs[1].Action != "" {
				t.Fatalf("dsn jobs %+v, want a delay notice then the failure", jobs)
			}
			if late := jobs[0].Created.Sub(testCreated.Add(tc.delayNotice)); late < 0 || late > time.Second {
				t.Errorf("delay notice queued %v after delay_notice", late)
			}
			if late := jobs[1].Created.Sub(deadline); late < 0 || late > time.Second {
				t.Errorf("expiry DSN queued %v after max age", late)
			}
		})
	}
}

// The trace says how the attempt ended for the message: retry with the
// deferring reply, expired with the last reply, and the notices as lines of
// their own.
func TestRelayNotesOutcomeForTrace(t *testing.T) {
	t.Parallel()
	tr := &fakeTransport{}
	tr.set("busy@example.com", reply450)
	tr.set("gone@example.com", reply550)
	f := newFixture(t, tr)
	f.route.MaxAge, f.route.DelayNotice = time.Hour, time.Minute
	type line struct {
		event  string
		status int
	}
	var got []line
	for _, at := range []time.Duration{0, time.Minute, time.Hour} {
		f.now = testCreated.Add(at)
		rec := trace.Log("relay", f.handler(t), slog.New(slog.NewJSONHandler(lineSink(func(b []byte) {
			_, ev, ok := trace.FromLog(b)
			if ok {
				got = append(got, line{ev.Event, ev.Status})
			}
		}), nil)))
		_ = rec.Handle(t.Context(), postern.Job{Body: f.body(t), Attempt: 1})
	}
	want := []line{
		{trace.EventRetry, 450}, {trace.EventDSNQueued, 0}, // gone@ refused for good; busy@ deferred
		{trace.EventRetry, 450}, {trace.EventDelayNoticeQueued, 0},
		{trace.EventExpired, 450}, {trace.EventDSNQueued, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("trace %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

type lineSink func([]byte)

func (s lineSink) Write(p []byte) (int, error) { s(p); return len(p), nil }
