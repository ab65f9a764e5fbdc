package fsqueue

import (
	"context"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// ReleaseInFlight makes every message in flight visible at once and returns
// how many it released. The queue file is locked to one process, so at
// start-up every in-flight message belonged to a consumer that died with the
// previous process: waiting out its visibility timeout (minutes) would only
// delay mail. Delayed messages keep their delay. Call it before starting
// consumers.
func (q *Queue) ReleaseInFlight(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("fsqueue: release %s: %w", q.name, err)
	}
	n := 0
	err := q.db.update(func(tx *bolt.Tx) error {
		n = 0
		b, err := openBuckets(tx, q.name)
		if err != nil {
			return err
		}
		now := time.Now()
		var ids []ulid.ULID
		c := b.ready.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			at, id, err := splitReadyKey(k)
			if err != nil {
				return err
			}
			if at.After(now) && len(v) == 1 && v[0] == stateInFlight {
				ids = append(ids, id)
			}
		}
		for _, id := range ids {
			raw := b.msgs.Get(id[:])
			if raw == nil {
				continue
			}
			rec, err := decodeRecord(raw)
			if err != nil {
				return err
			}
			if err := b.ready.Delete(readyKey(rec.visibleAt, id)); err != nil {
				return err
			}
			rec.visibleAt = now
			if err := b.msgs.Put(id[:], rec.encode()); err != nil {
				return err
			}
			if err := b.ready.Put(readyKey(now, id), []byte{stateInFlight}); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("fsqueue: release %s: %w", q.name, err)
	}
	if n > 0 {
		q.db.waker(q.name).broadcast()
	}
	return n, nil
}
