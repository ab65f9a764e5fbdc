package fsqueue

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/postern/postern/internal/queue"
)

var _ queue.Queue = (*Queue)(nil)

// Config is the policy of one queue, given each time it is opened (it is
// not stored in the file).
type Config struct {
	// MaxReceives is how many times a message is delivered before it is
	// moved to DeadLetter instead, as an SQS redrive policy's
	// maxReceiveCount. 0 means never.
	MaxReceives int

	// DeadLetter names the queue, in the same DB, that takes messages
	// received MaxReceives times. Set both or neither.
	DeadLetter string
}

// Queue is a handle on one named queue of a DB. Handles on the same name
// share the queue's messages and wake each other's long polls.
type Queue struct {
	db   *DB
	name string
	cfg  Config
	wake *waker
	dead *waker // the dead-letter queue's, nil without one
}

// Queue opens the queue called name, creating it (and its dead-letter
// queue) if needed. Names follow SQS: 1 to 80 of [A-Za-z0-9_-].
func (db *DB) Queue(name string, cfg Config) (*Queue, error) {
	if err := validName(name); err != nil {
		return nil, fmt.Errorf("fsqueue: queue %q: %w", name, err)
	}
	if cfg.MaxReceives < 0 || (cfg.MaxReceives > 0) != (cfg.DeadLetter != "") {
		return nil, fmt.Errorf("fsqueue: queue %s: set both MaxReceives > 0 and DeadLetter, or neither (got %d and %q)",
			name, cfg.MaxReceives, cfg.DeadLetter)
	}
	if cfg.DeadLetter != "" {
		if err := validName(cfg.DeadLetter); err != nil {
			return nil, fmt.Errorf("fsqueue: queue %s: dead-letter queue %q: %w", name, cfg.DeadLetter, err)
		}
		if cfg.DeadLetter == name {
			return nil, fmt.Errorf("fsqueue: queue %s: cannot be its own dead-letter queue", name)
		}
	}
	err := db.update(func(tx *bolt.Tx) error {
		if _, err := createBuckets(tx, name); err != nil {
			return err
		}
		if cfg.DeadLetter != "" {
			if _, err := createBuckets(tx, cfg.DeadLetter); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fsqueue: create queue %s: %w", name, err)
	}
	q := &Queue{db: db, name: name, cfg: cfg, wake: db.waker(name)}
	if cfg.DeadLetter != "" {
		q.dead = db.waker(cfg.DeadLetter)
	}
	return q, nil
}

// Name is the queue's name.
func (q *Queue) Name() string { return q.name }

// Send stores body and makes it receivable after delay. It returns once the
// message is committed to disk; concurrent Sends share one commit. If ctx
// ends while the commit is in progress, Send still waits for it.
func (q *Queue) Send(ctx context.Context, body []byte, delay time.Duration) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("fsqueue: send to %s: %w", q.name, err)
	}
	if delay < 0 {
		return "", fmt.Errorf("fsqueue: send to %s: negative delay %s", q.name, delay)
	}
	id, err := q.put([][]byte{body}, delay, nil)
	if err != nil {
		return "", fmt.Errorf("fsqueue: send to %s: %w", q.name, err)
	}
	// Wake receivers even for a delayed message: one sleeping until the
	// end of its wait must now set a timer for this message's time.
	q.wake.broadcast()
	return id.String(), nil
}

// Receive claims up to max visible messages in one transaction, oldest
// visible time first, hiding each for visibility. With none visible it
// sleeps until a Send or ChangeVisibility on this queue, the next delayed or
// in-flight message's time, the end of wait, or ctx ends, whichever is
// first. A message already received MaxReceives times is moved to the
// dead-letter queue in the same transaction instead of being returned.
func (q *Queue) Receive(ctx context.Context, max int, visibility, wait time.Duration) ([]queue.Message, error) {
	if max < 1 {
		return nil, fmt.Errorf("fsqueue: receive from %s: max %d, want at least 1", q.name, max)
	}
	if visibility < 0 {
		return nil, fmt.Errorf("fsqueue: receive from %s: negative visibility %s", q.name, visibility)
	}
	deadline := time.Now().Add(wait)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("fsqueue: receive from %s: %w", q.name, err)
		}
		changed := q.wake.wait()
		msgs, next, again, err := q.claim(max, visibility)
		if err != nil {
			return nil, fmt.Errorf("fsqueue: receive from %s: %w", q.name, err)
		}
		if len(msgs) > 0 {
			return msgs, nil
		}
		now := time.Now()
		if !now.Before(deadline) {
			return []queue.Message{}, nil
		}
		if again {
			continue // the queue changed under us; look again
		}
		until := deadline
		if !next.IsZero() && next.Before(until) {
			until = next
		}
		if timer == nil {
			timer = time.NewTimer(until.Sub(now))
		} else {
			timer.Reset(until.Sub(now))
		}
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("fsqueue: receive from %s: %w", q.name, ctx.Err())
		case <-q.db.done:
			return nil, fmt.Errorf("fsqueue: receive from %s: %w", q.name, ErrClosed)
		}
	}
}

// claim receives up to max messages in one write transaction (shared, like
// every write, with concurrent ones). With none received it returns when
// the next message becomes visible (zero if the queue is empty), or again
// if it made other progress (dead-lettering) or lost a race, so the caller
// looks again at once. It reads before it writes, so an empty poll costs no
// commit and no fsync.
func (q *Queue) claim(max int, visibility time.Duration) (msgs []queue.Message, next time.Time, again bool, err error) {
	err = q.db.view(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx, q.name)
		if err != nil {
			return err
		}
		k, _ := b.ready.Cursor().First()
		if k == nil {
			return nil
		}
		next, _, err = splitReadyKey(k)
		return err
	})
	if err != nil || next.IsZero() || next.After(time.Now()) {
		return nil, next, false, err
	}

	var out []queue.Message
	moved := 0
	err = q.db.update(func(tx *bolt.Tx) error {
		out, moved = nil, 0 // update may run this more than once
		b, err := openBuckets(tx, q.name)
		if err != nil {
			return err
		}
		now := time.Now()
		deliver, dead, err := q.scanVisible(b, now, max)
		if err != nil {
			return err
		}
		if len(dead) > 0 {
			dlq, err := createBuckets(tx, q.cfg.DeadLetter)
			if err != nil {
				return err
			}
			for _, c := range dead {
				if err := move(b, dlq, c.id, c.rec, now); err != nil {
					return err
				}
			}
			moved = len(dead)
		}
		for _, c := range deliver {
			m, err := deliverOne(b, c.id, c.rec, now, visibility)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, false, err
	}
	if moved > 0 {
		q.dead.broadcast()
	}
	return out, time.Time{}, len(out) == 0, nil
}

// candidate is a visible message found by scanVisible.
type candidate struct {
	id  ulid.ULID
	rec record
}

// scanVisible reads, without changing anything, the visible messages up to
// max deliverable ones, and the ones due for the dead-letter queue on the
// way. Changes come after the scan, as deleting under a bolt cursor can
// make it skip keys.
func (q *Queue) scanVisible(b buckets, now time.Time, max int) (deliver, dead []candidate, err error) {
	c := b.ready.Cursor()
	for k, _ := c.First(); k != nil && len(deliver) < max; k, _ = c.Next() {
		at, id, err := splitReadyKey(k)
		if err != nil {
			return nil, nil, err
		}
		if at.After(now) {
			break
		}
		v := b.msgs.Get(id[:])
		if v == nil {
			return nil, nil, fmt.Errorf("index names message %s that is not stored", id)
		}
		rec, err := decodeRecord(v)
		if err != nil {
			return nil, nil, fmt.Errorf("message %s: %w", id, err)
		}
		if q.cfg.MaxReceives > 0 && rec.receiveCount >= uint32(q.cfg.MaxReceives) {
			dead = append(dead, candidate{id, rec})
			continue
		}
		deliver = append(deliver, candidate{id, rec})
	}
	return deliver, dead, nil
}

// deliverOne marks a message received: one more receive, a fresh receipt,
// hidden until now+visibility.
func deliverOne(b buckets, id ulid.ULID, rec record, now time.Time, visibility time.Duration) (queue.Message, error) {
	if err := b.ready.Delete(readyKey(rec.visibleAt, id)); err != nil {
		return queue.Message{}, err
	}
	rec.receiveCount++
	if _, err := rand.Read(rec.token[:]); err != nil {
		return queue.Message{}, fmt.Errorf("receipt token: %w", err)
	}
	rec.visibleAt = now.Add(visibility)
	if err := b.msgs.Put(id[:], rec.encode()); err != nil {
		return queue.Message{}, err
	}
	if err := b.ready.Put(readyKey(rec.visibleAt, id), []byte{stateInFlight}); err != nil {
		return queue.Message{}, err
	}
	return queue.Message{
		ID:           id.String(),
		Body:         rec.body,
		Receipt:      receipt(id, rec.token),
		ReceiveCount: int(rec.receiveCount),
		SentAt:       rec.sentAt,
	}, nil
}

// move takes a message out of one queue and puts it, visible at once and
// never received, into another, keeping its id and sent time.
func move(from, to buckets, id ulid.ULID, rec record, now time.Time) error {
	if err := from.ready.Delete(readyKey(rec.visibleAt, id)); err != nil {
		return err
	}
	if err := from.msgs.Delete(id[:]); err != nil {
		return err
	}
	rec.receiveCount = 0
	rec.token = [tokenLen]byte{}
	rec.visibleAt = now
	if err := to.msgs.Put(id[:], rec.encode()); err != nil {
		return err
	}
	return to.ready.Put(readyKey(now, id), []byte{stateWaiting})
}

// Delete acknowledges a received message. The receipt must be the one from
// the message's latest receive (even if its visibility has run out since);
// otherwise the error wraps queue.ErrInvalidReceipt and nothing changes.
func (q *Queue) Delete(ctx context.Context, receipt string) error {
	err := q.withReceipt(ctx, receipt, func(b buckets, id ulid.ULID, rec record) error {
		if err := b.ready.Delete(readyKey(rec.visibleAt, id)); err != nil {
			return err
		}
		return b.msgs.Delete(id[:])
	})
	if err != nil {
		return fmt.Errorf("fsqueue: delete from %s: %w", q.name, err)
	}
	return nil
}

// ChangeVisibility hides a received message for d from now; 0 makes it
// visible at once. The receipt rules are Delete's.
func (q *Queue) ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("fsqueue: change visibility in %s: negative duration %s", q.name, d)
	}
	err := q.withReceipt(ctx, receipt, func(b buckets, id ulid.ULID, rec record) error {
		if err := b.ready.Delete(readyKey(rec.visibleAt, id)); err != nil {
			return err
		}
		rec.visibleAt = time.Now().Add(d)
		if err := b.msgs.Put(id[:], rec.encode()); err != nil {
			return err
		}
		return b.ready.Put(readyKey(rec.visibleAt, id), []byte{stateInFlight})
	})
	if err != nil {
		return fmt.Errorf("fsqueue: change visibility in %s: %w", q.name, err)
	}
	q.wake.broadcast()
	return nil
}

// withReceipt runs fn on the message the receipt names, in a batched write.
// A receipt that does not match is reported after the commit rather than
// by failing the transaction, which would make bolt re-run the whole batch
// the caller shares with others.
func (q *Queue) withReceipt(ctx context.Context, rcpt string, fn func(b buckets, id ulid.ULID, rec record) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	id, token, err := parseReceipt(rcpt)
	if err != nil {
		return err
	}
	var mismatch error
	err = q.db.update(func(tx *bolt.Tx) error {
		mismatch = nil // Batch may run this more than once
		b, err := openBuckets(tx, q.name)
		if err != nil {
			return err
		}
		v := b.msgs.Get(id[:])
		if v == nil {
			mismatch = fmt.Errorf("message %s is not in the queue: %w", id, queue.ErrInvalidReceipt)
			return nil
		}
		rec, err := decodeRecord(v)
		if err != nil {
			return fmt.Errorf("message %s: %w", id, err)
		}
		if rec.receiveCount == 0 || rec.token != token {
			mismatch = fmt.Errorf("message %s was received again since, or never: %w", id, queue.ErrInvalidReceipt)
			return nil
		}
		return fn(b, id, rec)
	})
	if err != nil {
		return err
	}
	return mismatch
}

// buckets are the two sub-buckets of one queue.
type buckets struct {
	msgs  *bolt.Bucket // id -> record
	ready *bolt.Bucket // visible time + id -> state
}

const (
	msgsBucket  = "msgs"
	readyBucket = "ready"
)

// openBuckets finds the buckets of a queue created by DB.Queue.
func openBuckets(tx *bolt.Tx, name string) (buckets, error) {
	qb := tx.Bucket([]byte(rootBucket)).Bucket([]byte(name))
	if qb == nil {
		return buckets{}, fmt.Errorf("queue %s does not exist in the file", name)
	}
	b := buckets{msgs: qb.Bucket([]byte(msgsBucket)), ready: qb.Bucket([]byte(readyBucket))}
	if b.msgs == nil || b.ready == nil {
		return buckets{}, fmt.Errorf("queue %s is missing a sub-bucket", name)
	}
	return b, nil
}

// createBuckets makes the buckets of a queue if they do not exist.
func createBuckets(tx *bolt.Tx, name string) (buckets, error) {
	qb, err := tx.Bucket([]byte(rootBucket)).CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return buckets{}, fmt.Errorf("create bucket %s: %w", name, err)
	}
	var b buckets
	if b.msgs, err = qb.CreateBucketIfNotExists([]byte(msgsBucket)); err != nil {
		return buckets{}, fmt.Errorf("create bucket %s/msgs: %w", name, err)
	}
	if b.ready, err = qb.CreateBucketIfNotExists([]byte(readyBucket)); err != nil {
		return buckets{}, fmt.Errorf("create bucket %s/ready: %w", name, err)
	}
	return b, nil
}

// validName applies SQS's rule for standard queue names.
func validName(name string) error {
	if len(name) == 0 || len(name) > 80 {
		return errors.New("name must be 1 to 80 characters")
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("name has %q; use only A-Z, a-z, 0-9, - and _", c)
		}
	}
	return nil
}
