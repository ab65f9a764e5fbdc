package fsqueue_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/postern/postern/internal/queue"
	"github.com/postern/postern/internal/queue/fsqueue"
	"github.com/postern/postern/internal/queue/queuetest"
)

// openDB opens a fresh file in t's temp dir, closed when t ends.
func openDB(t testing.TB) *fsqueue.DB {
	t.Helper()
	db, err := fsqueue.Open(filepath.Join(t.TempDir(), "queue.db"), fsqueue.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func openQueue(t testing.TB, db *fsqueue.DB, name string, cfg fsqueue.Config) *fsqueue.Queue {
	t.Helper()
	q, err := db.Queue(name, cfg)
	if err != nil {
		t.Fatalf("Queue(%s): %v", name, err)
	}
	return q
}

// TestConformance gives every case a file of its own.
func TestConformance(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, queuetest.Harness{New: func(t *testing.T, spec queuetest.Spec) (queue.Queue, queue.Queue) {
		db := openDB(t)
		if spec.MaxReceives == 0 {
			return openQueue(t, db, "q", fsqueue.Config{}), nil
		}
		q := openQueue(t, db, "q", fsqueue.Config{MaxReceives: spec.MaxReceives, DeadLetter: "q-dlq"})
		return q, openQueue(t, db, "q-dlq", fsqueue.Config{})
	}})
}

// TestConformanceSharedFile runs every case on queues of one file at once,
// so they also show that queues in a file neither see nor wake each other
// wrongly, and that their writes share commits correctly.
func TestConformanceSharedFile(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	var n atomic.Int64
	queuetest.Run(t, queuetest.Harness{New: func(t *testing.T, spec queuetest.Spec) (queue.Queue, queue.Queue) {
		name := fmt.Sprintf("q%d", n.Add(1))
		if spec.MaxReceives == 0 {
			return openQueue(t, db, name, fsqueue.Config{}), nil
		}
		q := openQueue(t, db, name, fsqueue.Config{MaxReceives: spec.MaxReceives, DeadLetter: name + "-dlq"})
		return q, openQueue(t, db, name+"-dlq", fsqueue.Config{})
	}})
}
