package fsqueue

import (
	"context"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// marksBucket holds small named values that a writer commits together with
// its messages, such as how far a log feeding the queue has been applied.
const marksBucket = "marks"

// Mark is a named value stored in the queue file.
type Mark struct {
	Key   string
	Value []byte
}

// SendBatch stores every body, receivable at once, and sets mark (when not
// nil) in the same transaction: either all of it is on disk when SendBatch
// returns nil, or none of it. That is what lets a feeder record how far it
// got without ever enqueueing a message twice or losing one.
func (q *Queue) SendBatch(ctx context.Context, bodies [][]byte, mark *Mark) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fsqueue: send to %s: %w", q.name, err)
	}
	if _, err := q.put(bodies, 0, mark); err != nil {
		return fmt.Errorf("fsqueue: send batch to %s: %w", q.name, err)
	}
	if len(bodies) > 0 {
		q.wake.broadcast()
	}
	return nil
}

// put stores bodies, receivable after delay, and mark (if any) in one
// shared commit, and returns the id of the last body.
func (q *Queue) put(bodies [][]byte, delay time.Duration, mark *Mark) (ulid.ULID, error) {
	now := time.Now()
	type entry struct {
		id          ulid.ULID
		value, rkey []byte
	}
	entries := make([]entry, len(bodies))
	for i, body := range bodies {
		id := ulid.Make()
		rec := record{sentAt: now, visibleAt: now.Add(delay), body: body}
		entries[i] = entry{id: id, value: rec.encode(), rkey: readyKey(rec.visibleAt, id)}
	}
	err := q.db.update(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx, q.name)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := b.msgs.Put(e.id[:], e.value); err != nil {
				return err
			}
			if err := b.ready.Put(e.rkey, []byte{stateWaiting}); err != nil {
				return err
			}
		}
		if mark == nil {
			return nil
		}
		return putMark(tx, *mark)
	})
	if err != nil || len(entries) == 0 {
		return ulid.ULID{}, err
	}
	return entries[len(entries)-1].id, nil
}

// SetMark stores a mark on its own.
func (db *DB) SetMark(ctx context.Context, m Mark) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fsqueue: set mark %s: %w", m.Key, err)
	}
	if err := db.update(func(tx *bolt.Tx) error { return putMark(tx, m) }); err != nil {
		return fmt.Errorf("fsqueue: set mark %s: %w", m.Key, err)
	}
	return nil
}

// GetMark returns the value of a mark, or nil if it was never set.
func (db *DB) GetMark(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fsqueue: get mark %s: %w", key, err)
	}
	var out []byte
	err := db.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(marksBucket)); b != nil {
			if v := b.Get([]byte(key)); v != nil {
				out = append([]byte(nil), v...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fsqueue: get mark %s: %w", key, err)
	}
	return out, nil
}

func putMark(tx *bolt.Tx, m Mark) error {
	b, err := tx.CreateBucketIfNotExists([]byte(marksBucket))
	if err != nil {
		return err
	}
	return b.Put([]byte(m.Key), m.Value)
}
