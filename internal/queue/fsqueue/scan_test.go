package fsqueue_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/postern/postern/internal/queue/fsqueue"
)

// TestScan sees waiting, delayed, in-flight and dead-lettered messages and
// receives none of them.
func TestScan(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openDB(t)
	q := openQueue(t, db, "jobs", fsqueue.Config{MaxReceives: 1, DeadLetter: "jobs-dlq"})
	send := func(body string, delay time.Duration) {
		t.Helper()
		if _, err := q.Send(ctx, []byte(body), delay); err != nil {
			t.Fatal(err)
		}
	}
	receive := func() []string {
		t.Helper()
		msgs, err := q.Receive(ctx, 1, time.Hour, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range msgs {
			out = append(out, string(m.Body))
			if m.Body[0] == 'd' { // "dead": visible again at once
				if err := q.ChangeVisibility(ctx, m.Receipt, 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		return out
	}
	// "dead" is received once (its maximum); the next receive moves it to
	// the dead-letter queue.
	send("dead", 0)
	if got := receive(); !slices.Equal(got, []string{"dead"}) {
		t.Fatalf("first Receive = %q", got)
	}
	if got := receive(); len(got) != 0 {
		t.Fatalf("second Receive = %q, want nothing (dead-lettered)", got)
	}
	send("in-flight", 0)
	if got := receive(); !slices.Equal(got, []string{"in-flight"}) {
		t.Fatalf("third Receive = %q", got)
	}
	send("waiting", 0)
	send("delayed", time.Hour)

	var got []string
	err := db.Scan(ctx, []string{"jobs", "jobs-dlq"}, func(queue string, body []byte) error {
		got = append(got, queue+":"+string(body))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{"jobs-dlq:dead", "jobs:delayed", "jobs:in-flight", "jobs:waiting"}
	if !slices.Equal(got, want) {
		t.Fatalf("Scan saw %q, want %q", got, want)
	}
	// Nothing was received: "waiting" is still the next one.
	if got := receive(); !slices.Equal(got, []string{"waiting"}) {
		t.Fatalf("Receive after Scan = %q, want waiting", got)
	}

	stop := errors.New("stop")
	if err := db.Scan(ctx, []string{"jobs"}, func(string, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Scan returned %v, want fn's error", err)
	}
	if err := db.Scan(ctx, []string{"nope"}, func(string, []byte) error { return nil }); err == nil {
		t.Error("Scan of a queue that does not exist succeeded")
	}
}
