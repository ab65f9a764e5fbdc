package fsqueue

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Scan calls fn with the body of every message in the named queues
// (visible, delayed and in flight alike) without receiving any. All of them
// are read in one read transaction, a consistent view of the file: a
// message moving between two of the queues (dead-lettered, redriven) is
// seen in one or the other, and a stage that sends its next job before it
// deletes its own is seen holding at least one. Writers do not wait for it.
// body is only valid during the call and must not be kept or changed; fn
// must not use the DB. It is for housekeeping such as retention, which must
// know which messages jobs still reference.
func (db *DB) Scan(ctx context.Context, queues []string, fn func(queue string, body []byte) error) error {
	err := db.view(func(tx *bolt.Tx) error {
		for _, name := range queues {
			b, err := openBuckets(tx, name)
			if err != nil {
				return err
			}
			c := b.msgs.Cursor()
			n := 0
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if n++; n%1024 == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				if len(v) < headerLen || v[0] != recordVersion {
					return fmt.Errorf("queue %s: message %x: unreadable record", name, k)
				}
				if err := fn(name, v[headerLen:]); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fsqueue: scan: %w", err)
	}
	return nil
}
