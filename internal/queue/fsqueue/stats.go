package fsqueue

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Stats is a snapshot of one queue, for metrics and alarms (the local
// counterparts of SQS's ApproximateNumberOfMessages* and
// ApproximateAgeOfOldestMessage).
type Stats struct {
	Visible   int           // receivable now
	InFlight  int           // received, hidden by their visibility timeout
	Delayed   int           // not received yet, hidden by their delay
	OldestAge time.Duration // age of the oldest message in the queue; 0 if empty
}

// Stats counts the queue's messages. It reads the whole index (24 bytes a
// message) in one read transaction, which writers do not wait for.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, fmt.Errorf("fsqueue: stats of %s: %w", q.name, err)
	}
	var s Stats
	err := q.db.view(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx, q.name)
		if err != nil {
			return err
		}
		now := time.Now()
		c := b.ready.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			at, _, err := splitReadyKey(k)
			if err != nil {
				return err
			}
			switch {
			case !at.After(now):
				s.Visible++
			case len(v) == 1 && v[0] == stateInFlight:
				s.InFlight++
			default:
				s.Delayed++
			}
		}
		// Ids are ULIDs, which sort by the time they were minted, so the
		// first record is the oldest message (to within clock steps).
		if _, v := b.msgs.Cursor().First(); v != nil {
			rec, err := decodeRecord(v)
			if err != nil {
				return err
			}
			s.OldestAge = max(now.Sub(rec.sentAt), 0)
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("fsqueue: stats of %s: %w", q.name, err)
	}
	return s, nil
}

// redriveChunk bounds the messages moved in one transaction, so a large
// dead-letter queue does not make one huge commit.
const redriveChunk = 1000

// Redrive moves every message of q (typically a dead-letter queue) to the
// queue to, visible at once and with its receive count reset, keeping ids
// and sent times. It returns how many it moved. Messages in flight in q are
// moved too, so their receipts stop working. Each chunk is atomic; if ctx
// ends between chunks the rest stays in q.
func (q *Queue) Redrive(ctx context.Context, to *Queue) (int, error) {
	if to.db != q.db {
		return 0, fmt.Errorf("fsqueue: redrive %s to %s: queues are in different files", q.name, to.name)
	}
	if to.name == q.name {
		return 0, fmt.Errorf("fsqueue: redrive %s to itself", q.name)
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("fsqueue: redrive %s to %s: %w", q.name, to.name, err)
		}
		n := 0
		err := q.db.update(func(tx *bolt.Tx) error {
			n = 0
			from, err := openBuckets(tx, q.name)
			if err != nil {
				return err
			}
			dst, err := openBuckets(tx, to.name)
			if err != nil {
				return err
			}
			batch, err := firstRecords(from, redriveChunk)
			if err != nil {
				return err
			}
			now := time.Now()
			for _, c := range batch {
				if err := move(from, dst, c.id, c.rec, now); err != nil {
					return err
				}
			}
			n = len(batch)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("fsqueue: redrive %s to %s: %w", q.name, to.name, err)
		}
		total += n
		if n > 0 {
			to.wake.broadcast()
		}
		if n < redriveChunk {
			return total, nil
		}
	}
}

// firstRecords reads up to n messages in id order.
func firstRecords(b buckets, n int) ([]candidate, error) {
	var out []candidate
	cur := b.msgs.Cursor()
	for k, v := cur.First(); k != nil && len(out) < n; k, v = cur.Next() {
		var c candidate
		if len(k) != len(c.id) {
			return nil, fmt.Errorf("message key of %d bytes", len(k))
		}
		copy(c.id[:], k)
		rec, err := decodeRecord(v)
		if err != nil {
			return nil, fmt.Errorf("message %s: %w", c.id, err)
		}
		c.rec = rec
		out = append(out, c)
	}
	return out, nil
}
