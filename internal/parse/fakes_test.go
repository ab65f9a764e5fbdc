package parse

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob/memblob"
)

// memStore is the shared in-memory store with two assertion helpers.
type memStore struct{ *memblob.Store }

func newMemStore() *memStore { return &memStore{memblob.New()} }

func (s *memStore) object(t *testing.T, key string) []byte {
	t.Helper()
	b, ok := s.Bytes(key)
	if !ok {
		t.Fatalf("no object %s; have %v", key, s.keys())
	}
	return b
}

func (s *memStore) keys() []string { return slices.Sorted(slices.Values(s.Keys())) }

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
	quiet bool // keep lines without logging them (fuzzing)
	mu    sync.Mutex
	lines []string
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, string(p))
	if !w.quiet {
		w.t.Log(string(bytes.TrimSpace(p)))
	}
	return len(p), nil
}

func (w *logWriter) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.lines)
}
