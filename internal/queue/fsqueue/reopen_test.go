package fsqueue_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/postern/postern/internal/queue/fsqueue"
)

// TestReopenKeepsMessages: queued messages survive Close, and one in flight
// at Close comes back after its visibility, counted again.
func TestReopenKeepsMessages(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "queue.db")

	db, err := fsqueue.Open(path, fsqueue.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	q := openQueue(t, db, "jobs", fsqueue.Config{})
	sent := map[string]string{}
	for _, body := range []string{"a", "b", "c"} {
		id, err := q.Send(ctx, []byte(body), 0)
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		sent[id] = body
	}
	inFlight, err := q.Receive(ctx, 1, 3*time.Second, 0) // long enough to outlast a reopen on a loaded machine
	if err != nil || len(inFlight) != 1 {
		t.Fatalf("Receive = %d messages, %v", len(inFlight), err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	db = openDBAt(t, path)
	q = openQueue(t, db, "jobs", fsqueue.Config{})
	visible, err := q.Receive(ctx, 10, time.Minute, 0)
	if err != nil {
		t.Fatalf("Receive after reopen: %v", err)
	}
	if len(visible) != 2 {
		t.Fatalf("after reopen got %d visible messages, want the 2 not in flight", len(visible))
	}
	for _, m := range visible {
		if m.ID == inFlight[0].ID {
			t.Errorf("message in flight at Close was visible at once after reopen")
		}
		if sent[m.ID] != string(m.Body) || m.ReceiveCount != 1 {
			t.Errorf("got %q body %q count %d, sent body %q", m.ID, m.Body, m.ReceiveCount, sent[m.ID])
		}
	}
	back, err := q.Receive(ctx, 10, time.Minute, 8*time.Second)
	if err != nil || len(back) != 1 {
		t.Fatalf("Receive of the message in flight = %d messages, %v", len(back), err)
	}
	if m := back[0]; m.ID != inFlight[0].ID || m.ReceiveCount != 2 || string(m.Body) != sent[m.ID] {
		t.Errorf("got %q count %d body %q, want %q count 2", m.ID, m.ReceiveCount, m.Body, inFlight[0].ID)
	}
	if err := q.Delete(ctx, inFlight[0].Receipt); err == nil {
		t.Error("Delete with the receipt from before the reopen and a receive since succeeded")
	}
	if err := q.Delete(ctx, back[0].Receipt); err != nil {
		t.Errorf("Delete: %v", err)
	}
}

// openDBAt opens the file at path, closed when t ends.
func openDBAt(t testing.TB, path string) *fsqueue.DB {
	t.Helper()
	db, err := fsqueue.Open(path, fsqueue.Options{})
	if err != nil {
		t.Fatalf("Open %s: %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}
