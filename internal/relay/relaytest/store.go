package relaytest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/postern/postern/internal/blob"
)

// Store is an in-memory blob.Store. Err, when set, is consulted before
// every operation ("put", "get", "stat", "delete") and its error returned.
type Store struct {
	Err func(op, key string) error

	mu   sync.Mutex
	objs map[string][]byte
}

var _ blob.Store = (*Store)(nil)

// NewStore returns an empty Store.
func NewStore() *Store { return &Store{objs: map[string][]byte{}} }

func (s *Store) fail(op, key string) error {
	if s.Err == nil {
		return nil
	}
	return s.Err(op, key)
}

// Put stores a copy of r's bytes.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, _ *blob.PutOptions) error {
	if err := s.fail("put", key); err != nil {
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[key] = b
	return nil
}

// Get returns the object's bytes.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := s.fail("get", key); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objs[key]
	if !ok {
		return nil, fmt.Errorf("relaytest store %s: %w", key, blob.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// Stat returns the object's size.
func (s *Store) Stat(ctx context.Context, key string) (blob.Attrs, error) {
	if err := s.fail("stat", key); err != nil {
		return blob.Attrs{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objs[key]
	if !ok {
		return blob.Attrs{}, fmt.Errorf("relaytest store %s: %w", key, blob.ErrNotFound)
	}
	return blob.Attrs{Size: int64(len(b)), ModTime: time.Unix(0, 0)}, nil
}

// Delete removes the object.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.fail("delete", key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objs, key)
	return nil
}

// Object returns a stored object's bytes and whether it exists.
func (s *Store) Object(key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objs[key]
	return bytes.Clone(b), ok
}

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
