package parse

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob"
)

// memStore is an in-memory blob.Store. putErr and getErr, when set, inject
// failures by key.
type memStore struct {
	mu      sync.Mutex
	objects map[string][]byte
	types   map[string]string
	puts    []string // keys in Put order

	putErr func(key string) error
	getErr func(key string) error
}

var _ blob.Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{objects: map[string][]byte{}, types: map[string]string{}}
}

func (s *memStore) Put(ctx context.Context, key string, r io.Reader, opts *blob.PutOptions) error {
	if !blob.ValidKey(key) {
		return fmt.Errorf("invalid key %q", key)
	}
	if s.putErr != nil {
		if err := s.putErr(key); err != nil {
			return err
		}
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[key] = b
	if opts != nil {
		s.types[key] = opts.ContentType
	}
	s.puts = append(s.puts, key)
	return ctx.Err()
}

func (s *memStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if s.getErr != nil {
		if err := s.getErr(key); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[key]
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, blob.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(bytes.Clone(b))), nil
}

func (s *memStore) Stat(ctx context.Context, key string) (blob.Attrs, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[key]
	if !ok {
		return blob.Attrs{}, fmt.Errorf("stat %s: %w", key, blob.ErrNotFound)
	}
	return blob.Attrs{Size: int64(len(b))}, nil
}

func (s *memStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objects, key)
	return nil
}

func (s *memStore) object(t *testing.T, key string) []byte {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[key]
	if !ok {
		t.Fatalf("no object %s; have %v", key, slices.Sorted(maps.Keys(s.objects)))
	}
	return b
}

func (s *memStore) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.objects))
}

// recorder is a Sender that keeps what it was sent; err, when set, fails it.
type recorder struct {
	mu     sync.Mutex
	bodies [][]byte
	err    error
}

var _ Sender = (*recorder)(nil)

func (r *recorder) Send(ctx context.Context, body []byte, delay time.Duration) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return "", r.err
	}
	r.bodies = append(r.bodies, bytes.Clone(body))
	return fmt.Sprintf("q-%d", len(r.bodies)), nil
}

func (r *recorder) sent() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bodies)
}

// logWriter sends log lines to t.Log and keeps them for assertions.
type logWriter struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, string(p))
	w.t.Log(string(bytes.TrimSpace(p)))
	return len(p), nil
}

func (w *logWriter) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.lines)
}
