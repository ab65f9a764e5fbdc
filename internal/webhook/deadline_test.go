package webhook

import (
	"net/http"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
)

// A receiver that keeps failing is retried with backoff, but no retry is
// ever scheduled past the route's max age: the attempt at the deadline is
// the last, and the DSN leaves then. (The issue saw max_age 2m expire after
// 9m54s, one uncapped backoff too late.) The clock is fake: each retry runs
// exactly when it was scheduled.
func TestRetriesNeverPassMaxAge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		maxAge     time.Duration
		retryAfter string // the receiver's Retry-After, if any
	}{
		{"backoff", 2 * time.Minute, ""},
		{"retry-after past the deadline", 2 * time.Minute, "3600"},
		{"day", 24 * time.Hour, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			rec := &recorder{statuses: []int{503}}
			if tc.retryAfter != "" {
				rec.header = http.Header{"Retry-After": {tc.retryAfter}}
			}
			srv := serve(t, rec)
			dsn := &fakeSender{}
			now := f.job.Created
			deadline := f.job.Created.Add(tc.maxAge)
			target := Target{URL: srv.URL, Secrets: [][]byte{testSecret}, MaxAge: tc.maxAge}
			h := f.handler(t, target, dsn, now, WithClock(func() time.Time { return now }), WithBackoff(time.Minute, time.Hour))
			for attempt := 1; ; attempt++ {
				if attempt > 200 {
					t.Fatal("never expired")
				}
				err := h.Handle(t.Context(), f.jobBody(t, attempt))
				if err == nil {
					break
				}
				d, ok := postern.RetryDelay(err)
				if !ok {
					t.Fatalf("attempt %d: %v carries no retry delay; the queue's own backoff is not bounded by max age", attempt, err)
				}
				next := now.Add(d)
				// A second's floor is allowed: queues count delays in seconds.
				if next.After(deadline) && d > time.Second {
					t.Fatalf("attempt %d at +%v scheduled the next at +%v, past max age %v", attempt, now.Sub(f.job.Created), next.Sub(f.job.Created), tc.maxAge)
				}
				now = next
			}
			jobs := dsn.jobs(t)
			if len(jobs) != 1 {
				t.Fatalf("%d DSN jobs, want 1", len(jobs))
			}
			// The expiry notice is queued at the deadline, well within a minute of it.
			if late := jobs[0].Created.Sub(deadline); late < 0 || late > time.Second {
				t.Fatalf("DSN queued %v after max age, want at it", late)
			}
			if jobs[0].Failed[0].Status != statusExpired {
				t.Errorf("DSN status %s, want %s", jobs[0].Failed[0].Status, statusExpired)
			}
		})
	}
}

// Just short of the deadline, the next try is at the deadline (not a
// backoff later), and not at once either.
func TestRetryDelayCappedAtDeadline(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := serve(t, &recorder{statuses: []int{500}})
	target := Target{URL: srv.URL, Secrets: [][]byte{testSecret}, MaxAge: time.Hour}
	for _, tc := range []struct {
		left, want time.Duration
	}{{10 * time.Second, 10 * time.Second}, {300 * time.Millisecond, time.Second}} {
		h := f.handler(t, target, &fakeSender{}, f.job.Created.Add(time.Hour-tc.left), WithBackoff(time.Hour, time.Hour))
		err := h.Handle(t.Context(), f.jobBody(t, 9))
		mustTemporary(t, err)
		if d, ok := postern.RetryDelay(err); !ok || d != tc.want {
			t.Errorf("%v before max age: RetryDelay = %v, %v; want %v", tc.left, d, ok, tc.want)
		}
	}
}
