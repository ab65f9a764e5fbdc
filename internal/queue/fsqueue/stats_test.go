package fsqueue_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/postern/postern/internal/queue/fsqueue"
)

func TestStats(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openQueue(t, openDB(t), "jobs", fsqueue.Config{})

	if s, err := q.Stats(ctx); err != nil || s != (fsqueue.Stats{}) {
		t.Fatalf("Stats of an empty queue = %+v, %v", s, err)
	}
	// A deleted message leaves nothing behind, not even in OldestAge.
	if _, err := q.Send(ctx, []byte("gone"), 0); err != nil {
		t.Fatal(err)
	}
	if msgs, err := q.Receive(ctx, 1, time.Hour, 0); err != nil || len(msgs) != 1 {
		t.Fatalf("Receive = %d, %v", len(msgs), err)
	} else if err := q.Delete(ctx, msgs[0].Receipt); err != nil {
		t.Fatal(err)
	}
	if s, err := q.Stats(ctx); err != nil || s != (fsqueue.Stats{}) {
		t.Fatalf("Stats after Send, Receive, Delete = %+v, %v; want all zero", s, err)
	}
	for range 3 {
		if _, err := q.Send(ctx, []byte("now"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Send(ctx, []byte("later"), time.Hour); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	msgs, err := q.Receive(ctx, 2, time.Hour, 0)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("Receive = %d, %v", len(msgs), err)
	}
	s, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Visible != 1 || s.InFlight != 2 || s.Delayed != 1 {
		t.Errorf("Stats = %+v, want 1 visible, 2 in flight, 1 delayed", s)
	}
	if s.OldestAge < 20*time.Millisecond || s.OldestAge > time.Minute {
		t.Errorf("OldestAge = %s, want about the 20ms since the first Send", s.OldestAge)
	}

	// A message made visible again counts as visible, not in flight.
	if err := q.ChangeVisibility(ctx, msgs[0].Receipt, 0); err != nil {
		t.Fatal(err)
	}
	if s, _ := q.Stats(ctx); s.Visible != 2 || s.InFlight != 1 {
		t.Errorf("after ChangeVisibility(0): %+v, want 2 visible, 1 in flight", s)
	}

	// Once everything is deleted nothing is left behind.
	all, err := q.Receive(ctx, 10, time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range append(all, msgs[1]) {
		if err := q.Delete(ctx, m.Receipt); err != nil {
			t.Fatalf("Delete %s: %v", m.ID, err)
		}
	}
	if s, err := q.Stats(ctx); err != nil || s.Visible != 0 || s.InFlight != 0 || s.Delayed != 1 {
		t.Errorf("after deleting all but the delayed one: %+v, %v", s, err)
	}
}

// TestRedrive: dead-lettered messages go back to their queue, visible,
// counted from zero, with their ids and bodies.
func TestRedrive(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openDB(t)
	q := openQueue(t, db, "jobs", fsqueue.Config{MaxReceives: 1, DeadLetter: "jobs-dlq"})
	dlq := openQueue(t, db, "jobs-dlq", fsqueue.Config{})

	want := map[string]string{}
	for _, body := range []string{"x", "y", "z"} {
		id, err := q.Send(ctx, []byte(body), 0)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = body
	}
	if msgs, err := q.Receive(ctx, 10, 0, 0); err != nil || len(msgs) != 3 {
		t.Fatalf("first Receive = %d, %v", len(msgs), err)
	}
	// Visibility 0: all three are due again, and each has had its one receive.
	if msgs, err := q.Receive(ctx, 10, 0, 0); err != nil || len(msgs) != 0 {
		t.Fatalf("second Receive = %d, %v; want none, all dead-lettered", len(msgs), err)
	}
	if s, _ := dlq.Stats(ctx); s.Visible != 3 {
		t.Fatalf("dead-letter Stats = %+v, want 3 visible", s)
	}

	n, err := dlq.Redrive(ctx, q)
	if err != nil || n != 3 {
		t.Fatalf("Redrive = %d, %v; want 3", n, err)
	}
	if s, _ := dlq.Stats(ctx); s != (fsqueue.Stats{}) {
		t.Errorf("dead-letter queue after Redrive: %+v", s)
	}
	msgs, err := q.Receive(ctx, 10, time.Hour, 0)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("Receive after Redrive = %d, %v", len(msgs), err)
	}
	for _, m := range msgs {
		if want[m.ID] != string(m.Body) || m.ReceiveCount != 1 {
			t.Errorf("got %s body %q count %d", m.ID, m.Body, m.ReceiveCount)
		}
	}

	if _, err := q.Redrive(ctx, q); err == nil {
		t.Error("Redrive to itself succeeded")
	}
	other := openQueue(t, openDB(t), "jobs", fsqueue.Config{})
	if _, err := q.Redrive(ctx, other); err == nil {
		t.Error("Redrive to a queue in another file succeeded")
	}
}

// TestDeadLetterWakesReceiver: a long poll on the dead-letter queue returns
// when a message is moved there.
func TestDeadLetterWakesReceiver(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openDB(t)
	q := openQueue(t, db, "jobs", fsqueue.Config{MaxReceives: 1, DeadLetter: "dead"})
	dlq := openQueue(t, db, "dead", fsqueue.Config{})
	if _, err := q.Send(ctx, []byte("p"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Receive(ctx, 1, 0, 0); err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	go func() {
		msgs, err := dlq.Receive(ctx, 1, time.Hour, 10*time.Second)
		if err != nil {
			t.Errorf("dead-letter Receive: %v", err)
		}
		got <- len(msgs)
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if msgs, err := q.Receive(ctx, 1, 0, 0); err != nil || len(msgs) != 0 {
		t.Fatalf("Receive = %d, %v; want the message dead-lettered", len(msgs), err)
	}
	if n := <-got; n != 1 {
		t.Fatalf("dead-letter Receive got %d", n)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("dead-letter long poll returned %s after the move", d)
	}
}

func TestQueueConfigErrors(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	for _, c := range []struct {
		name string
		cfg  fsqueue.Config
	}{
		{"", fsqueue.Config{}},
		{"has space", fsqueue.Config{}},
		{"jobs.fifo", fsqueue.Config{}},
		{"jobs", fsqueue.Config{MaxReceives: 3}},
		{"jobs", fsqueue.Config{DeadLetter: "dlq"}},
		{"jobs", fsqueue.Config{MaxReceives: -1, DeadLetter: "dlq"}},
		{"jobs", fsqueue.Config{MaxReceives: 3, DeadLetter: "jobs"}},
		{"jobs", fsqueue.Config{MaxReceives: 3, DeadLetter: "bad/name"}},
	} {
		if _, err := db.Queue(c.name, c.cfg); err == nil {
			t.Errorf("Queue(%q, %+v) succeeded", c.name, c.cfg)
		}
	}
	q := openQueue(t, db, "jobs", fsqueue.Config{})
	ctx := t.Context()
	if _, err := q.Send(ctx, nil, -time.Second); err == nil {
		t.Error("Send with a negative delay succeeded")
	}
	if _, err := q.Receive(ctx, 0, time.Second, 0); err == nil {
		t.Error("Receive with max 0 succeeded")
	}
	if _, err := q.Receive(ctx, 1, -time.Second, 0); err == nil {
		t.Error("Receive with negative visibility succeeded")
	}
}

// TestCloseEndsReceive: Close ends a long poll with ErrClosed, and later
// calls fail with it.
func TestCloseEndsReceive(t *testing.T) {
	t.Parallel()
	db, err := fsqueue.Open(filepath.Join(t.TempDir(), "queue.db"), fsqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q := openQueue(t, db, "jobs", fsqueue.Config{})
	done := make(chan error, 1)
	go func() {
		_, err := q.Receive(t.Context(), 1, time.Second, 20*time.Second)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, fsqueue.ErrClosed) {
			t.Errorf("Receive during Close = %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Receive still waiting 2s after Close")
	}
	if _, err := q.Send(t.Context(), []byte("x"), 0); !errors.Is(err, fsqueue.ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestFileLocked: a second open of a file in use fails after LockTimeout
// instead of corrupting it.
func TestFileLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "queue.db")
	openDBAt(t, path)
	start := time.Now()
	db, err := fsqueue.Open(path, fsqueue.Options{LockTimeout: 200 * time.Millisecond})
	if err == nil {
		_ = db.Close()
		t.Fatal("second Open of a file in use succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second Open took %s to fail", d)
	}
}
