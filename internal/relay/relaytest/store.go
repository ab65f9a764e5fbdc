package relaytest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/postern/postern/internal/blob/memblob"
)

// Store is the shared in-memory blob.Store; Err injects failures.
type Store = memblob.Store

// NewStore returns an empty Store.
func NewStore() *Store { return memblob.New() }

// Queue records the bodies sent to it; Err, when set, makes Send fail.
type Queue struct {
	Err error

	mu     sync.Mutex
	bodies [][]byte
}

// Send records body.
func (q *Queue) Send(ctx context.Context, body []byte, delay time.Duration) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.Err != nil {
		return "", q.Err
	}
	q.bodies = append(q.bodies, bytes.Clone(body))
	return fmt.Sprint(len(q.bodies)), nil
}

// Bodies returns what was sent, in order.
func (q *Queue) Bodies() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([][]byte(nil), q.bodies...)
}

// SetErr changes Err under the lock.
func (q *Queue) SetErr(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.Err = err
}
