package fsqueue_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/postern/postern/internal/queue/fsqueue"
)

// TestReleaseInFlight: after a restart, messages in flight under the dead
// process come back at once; delayed ones keep their delay.
func TestReleaseInFlight(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "queue.db")
	db := openDBAt(t, path)
	q := openQueue(t, db, "jobs", fsqueue.Config{})
	if _, err := q.Send(ctx, []byte("held"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Send(ctx, []byte("later"), time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := q.Receive(ctx, 10, time.Hour, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("Receive = %d, %v", len(got), err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDBAt(t, path)
	q = openQueue(t, db, "jobs", fsqueue.Config{})
	n, err := q.ReleaseInFlight(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ReleaseInFlight = %d, %v; want 1", n, err)
	}
	back, err := q.Receive(ctx, 10, time.Minute, 0)
	if err != nil || len(back) != 1 || string(back[0].Body) != "held" || back[0].ReceiveCount != 2 {
		t.Fatalf("after release got %+v, %v", back, err)
	}
	if err := q.Delete(ctx, back[0].Receipt); err != nil {
		t.Fatalf("Delete with the new receipt: %v", err)
	}
	s, err := q.Stats(ctx)
	if err != nil || s.Delayed != 1 || s.Visible != 0 || s.InFlight != 0 {
		t.Fatalf("stats after release = %+v, %v", s, err)
	}
}
