package fsqueue

import (
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrClosed is returned (wrapped) by operations on a closed DB, including
// a Receive that was waiting when Close was called.
var ErrClosed = errors.New("fsqueue: closed")

// Options tune a DB. The zero value is the production default.
type Options struct {
	// LockTimeout bounds the wait for the file lock that keeps a second
	// process from opening the same file. Default 5s.
	LockTimeout time.Duration
}

// DB is one queue file holding any number of named queues. It is safe for
// concurrent use; one process at a time may have the file open.
type DB struct {
	bolt   *bolt.DB
	writes committer

	done      chan struct{} // closed by Close, to end long polls
	closeOnce sync.Once
	closeErr  error

	mu     sync.Mutex
	wakers map[string]*waker // by queue name, shared by every handle on it
}

// rootBucket holds one bucket per queue.
const rootBucket = "queues"

// Open opens or creates the queue file at path. NoSync stays off: a commit
// is on disk when it returns.
func Open(path string, opts Options) (*DB, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 5 * time.Second
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      opts.LockTimeout,
		FreelistType: bolt.FreelistMapType, // stays fast as churn fragments the file
	})
	if err != nil {
		return nil, fmt.Errorf("fsqueue: open %s: %w", path, err)
	}
	if err := b.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(rootBucket))
		return err
	}); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("fsqueue: init %s: %w", path, err)
	}
	return &DB{bolt: b, writes: committer{bolt: b}, done: make(chan struct{}), wakers: map[string]*waker{}}, nil
}

// Close ends waiting receivers with ErrClosed and closes the file, after
// transactions in progress finish. It is safe to call more than once.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		close(db.done)
		if err := db.bolt.Close(); err != nil {
			db.closeErr = fmt.Errorf("fsqueue: close: %w", err)
		}
	})
	return db.closeErr
}

// waker returns the waker shared by every handle on the queue name.
func (db *DB) waker(name string) *waker {
	db.mu.Lock()
	defer db.mu.Unlock()
	w, ok := db.wakers[name]
	if !ok {
		w = newWaker()
		db.wakers[name] = w
	}
	return w
}

// update runs fn in a write transaction that concurrent callers share, so
// they share its fsync too (see committer). fn may run more than once and
// must only have effects inside tx.
func (db *DB) update(fn func(*bolt.Tx) error) error {
	if err := db.closedErr(); err != nil {
		return err
	}
	return db.translate(db.writes.do(fn))
}

// view runs fn in a read transaction.
func (db *DB) view(fn func(*bolt.Tx) error) error {
	if err := db.closedErr(); err != nil {
		return err
	}
	return db.translate(db.bolt.View(fn))
}

// translate reports a transaction refused because Close won the race as
// ErrClosed, the error callers can test for.
func (db *DB) translate(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// closedErr reports ErrClosed once Close has been called.
func (db *DB) closedErr() error {
	select {
	case <-db.done:
		return ErrClosed
	default:
		return nil
	}
}
