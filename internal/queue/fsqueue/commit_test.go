package fsqueue

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestCommitterGroups: concurrent writes all land, share commits, and a
// failing or panicking write gets its own error without sinking the others.
func TestCommitterGroups(t *testing.T) {
	t.Parallel()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	c := &committer{bolt: b}
	errBad := errors.New("bad write")

	const writers = 200
	errs := make([]error, writers)
	var mu sync.Mutex
	txs := map[int]bool{} // ids of the transactions that committed writes
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			errs[i] = c.do(func(tx *bolt.Tx) error {
				switch {
				case i%50 == 7:
					return errBad
				case i%50 == 9:
					panic("boom")
				}
				mu.Lock()
				txs[tx.ID()] = true
				mu.Unlock()
				return tx.Bucket([]byte("b")).Put(fmt.Appendf(nil, "k%03d", i), []byte("v"))
			})
		})
	}
	wg.Wait()

	stored := 0
	if err := b.View(func(tx *bolt.Tx) error {
		stored = tx.Bucket([]byte("b")).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		switch {
		case i%50 == 7 && !errors.Is(err, errBad):
			t.Errorf("write %d = %v, want its own error", i, err)
		case i%50 == 9 && (err == nil || !strings.Contains(err.Error(), "boom")):
			t.Errorf("write %d = %v, want the panic as an error", i, err)
		case i%50 != 7 && i%50 != 9 && err != nil:
			t.Errorf("write %d = %v", i, err)
		}
	}
	if want := writers - 2*writers/50; stored != want {
		t.Errorf("%d keys stored, want %d", stored, want)
	}
	if n := len(txs); n >= writers-2*writers/50 {
		t.Errorf("%d writes took %d transactions: none were shared", writers, n)
	} else {
		t.Logf("%d writes in %d transactions", writers, n)
	}
	if c.busy || len(c.pending) != 0 {
		t.Errorf("committer left busy=%t with %d pending", c.busy, len(c.pending))
	}
}
