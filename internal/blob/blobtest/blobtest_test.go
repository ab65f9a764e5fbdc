package blobtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob"
)

// memStore is a minimal in-memory reference driver. The suite passing against
// it shows that the cases assume only the blob.Store contract, nothing of a
// filesystem. (It buffers whole objects, which real drivers must not.)
type memStore struct {
	mu   sync.Mutex
	objs map[string]memObj
}

type memObj struct {
	data []byte
	mod  time.Time
}

var _ blob.Store = (*memStore)(nil)

func (m *memStore) check(ctx context.Context, key string) error {
	if !blob.ValidKey(key) {
		return fmt.Errorf("invalid key %q", key)
	}
	return ctx.Err()
}

func (m *memStore) Put(ctx context.Context, key string, r io.Reader, _ *blob.PutOptions) error {
	if err := m.check(ctx, key); err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[key] = memObj{buf.Bytes(), time.Now()}
	return nil
}

func (m *memStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := m.check(ctx, key); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, blob.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(o.data)), nil
}

func (m *memStore) Stat(ctx context.Context, key string) (blob.Attrs, error) {
	if err := m.check(ctx, key); err != nil {
		return blob.Attrs{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return blob.Attrs{}, fmt.Errorf("stat %s: %w", key, blob.ErrNotFound)
	}
	return blob.Attrs{Size: int64(len(o.data)), ModTime: o.mod}, nil
}

func (m *memStore) Delete(ctx context.Context, key string) error {
	if err := m.check(ctx, key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, key)
	return nil
}

func TestMemStoreConforms(t *testing.T) {
	t.Parallel()
	Run(t, func(*testing.T) blob.Store { return &memStore{objs: map[string]memObj{}} })
}
