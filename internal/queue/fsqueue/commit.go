package fsqueue

import (
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// maxGroup caps the writes in one commit, so one commit stays short.
const maxGroup = 1000

// committer folds concurrent writes into shared transactions: one commit,
// one fsync, many writes (group commit). It does what bolt's DB.Batch
// does, without Batch's fixed wait for company (MaxBatchDelay): a write
// that finds no commit in progress commits at once, and writes that arrive
// while a commit is in progress go together into the next one. So a lone
// writer pays one fsync, not the delay plus the fsync, and under load
// batches grow with the load instead of with a timer. (With bolt's default
// 10ms delay, eight concurrent senders were slower than one.)
type committer struct {
	bolt *bolt.DB

	mu      sync.Mutex
	pending []*write
	busy    bool // a leader is committing; new writes queue behind it
}

// write is one caller's function and where its result goes.
type write struct {
	fn   func(*bolt.Tx) error
	done chan error // buffered: errLead, then the result
}

// errLead hands the turn to commit the queued writes to the caller whose
// write heads the queue. Callers never see it.
var errLead = errors.New("fsqueue: lead the next commit")

// do runs fn in a write transaction shared with concurrent callers. As with
// bolt's Batch, fn may run more than once and must only have effects
// inside tx; its error is the one it returns when run alone.
func (c *committer) do(fn func(*bolt.Tx) error) error {
	w := &write{fn: fn, done: make(chan error, 2)}
	c.mu.Lock()
	c.pending = append(c.pending, w)
	lead := !c.busy
	c.busy = true
	c.mu.Unlock()

	if !lead {
		if err := <-w.done; err != errLead {
			return err
		}
	}
	// Leading: commit what is queued (w among it), then pass the turn to
	// the head of whatever queued meanwhile, so no caller serves others'
	// commits for long.
	c.mu.Lock()
	n := min(len(c.pending), maxGroup)
	group := c.pending[:n:n]
	c.pending = c.pending[n:]
	c.mu.Unlock()

	c.commit(group)

	c.mu.Lock()
	if len(c.pending) > 0 {
		c.pending[0].done <- errLead
	} else {
		c.busy = false
		c.pending = nil
	}
	c.mu.Unlock()
	return <-w.done
}

// commit runs group in one transaction. A write whose fn fails is taken out
// and run alone, so it gets its own error and the others still commit.
func (c *committer) commit(group []*write) {
	for len(group) > 0 {
		failed := -1
		err := c.bolt.Update(func(tx *bolt.Tx) error {
			for i, w := range group {
				if err := safeCall(w.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, w := range group {
				w.done <- err // nil, or a commit error all of them share
			}
			return
		}
		w := group[failed]
		group = append(group[:failed:failed], group[failed+1:]...)
		w.done <- c.bolt.Update(func(tx *bolt.Tx) error { return safeCall(w.fn, tx) })
	}
}

// safeCall turns a panic in fn into an error, so one bad write cannot take
// down the leader and strand the writes queued behind it.
func safeCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in write transaction: %v", p)
		}
	}()
	return fn(tx)
}
