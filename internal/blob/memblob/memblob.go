// Package memblob is an in-memory blob.Store for tests of the stages that
// use a store. It passes the same conformance suite as the real drivers,
// and lets a test inject failures per operation and key.
package memblob

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/postern/postern/internal/blob"
)

// Store is an in-memory blob.Store, safe for concurrent use.
type Store struct {
	// Err, when set, is consulted before every operation ("put", "get",
	// "stat", "delete") and its error returned.
	Err func(op, key string) error

	mu    sync.Mutex
	objs  map[string][]byte
	types map[string]string
	mod   map[string]time.Time
}

var _ blob.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	return &Store{objs: map[string][]byte{}, types: map[string]string{}, mod: map[string]time.Time{}}
}

func (s *Store) check(ctx context.Context, op, key string) error {
	if !blob.ValidKey(key) {
		return fmt.Errorf("memblob %s: invalid key %q", op, key)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.Err != nil {
		return s.Err(op, key)
	}
	return nil
}

// Put stores a copy of r's bytes; nothing is stored if reading r fails.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts *blob.PutOptions) error {
	if err := s.check(ctx, "put", key); err != nil {
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("memblob put %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[key] = b
	s.mod[key] = time.Now()
	s.types[key] = ""
	if opts != nil {
		s.types[key] = opts.ContentType
	}
	return nil
}

// Get returns the object's bytes.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := s.check(ctx, "get", key); err != nil {
		return nil, err
	}
	b, ok := s.Bytes(key)
	if !ok {
		return nil, fmt.Errorf("memblob get %s: %w", key, blob.ErrNotFound)
	}
	return reader{bytes.NewReader(b)}, nil
}

// reader keeps bytes.Reader's Len visible, as a file's Stat is, so readers
// that size their buffer from it behave here as with a real store.
type reader struct{ *bytes.Reader }

func (reader) Close() error { return nil }

// Stat returns the object's size and time.
func (s *Store) Stat(ctx context.Context, key string) (blob.Attrs, error) {
	if err := s.check(ctx, "stat", key); err != nil {
		return blob.Attrs{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objs[key]
	if !ok {
		return blob.Attrs{}, fmt.Errorf("memblob stat %s: %w", key, blob.ErrNotFound)
	}
	return blob.Attrs{Size: int64(len(b)), ModTime: s.mod[key]}, nil
}

// Delete removes the object; a missing one is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.check(ctx, "delete", key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objs, key)
	delete(s.types, key)
	delete(s.mod, key)
	return nil
}

// Bytes returns a stored object's bytes directly, for assertions.
func (s *Store) Bytes(key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objs[key]
	return bytes.Clone(b), ok
}

// ContentType returns the content type an object was stored with.
func (s *Store) ContentType(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.types[key]
}

// Keys returns the stored keys, for assertions.
func (s *Store) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.objs))
	for k := range s.objs {
		out = append(out, k)
	}
	return out
}
