package blobtest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/postern/postern/internal/blob"
)

func testConcurrentDistinct(t *testing.T, ctx context.Context, s blob.Store) {
	const n = 32
	content := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("object %d;", i)), 100+i) }
	// Half the keys share new parent prefixes, so drivers that create
	// directories race on creating the same ones.
	keyOf := func(i int) string {
		if i%2 == 0 {
			return fmt.Sprintf("conc/shared/%d/n%d", i%4, i)
		}
		return fmt.Sprintf("conc/own%d/obj", i)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Put(ctx, keyOf(i), onlyReader{bytes.NewReader(content(i))}, nil)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Put(%q): %v", keyOf(i), err)
		}
	}
	for i := range n {
		wantContent(t, ctx, s, keyOf(i), content(i))
	}
}

// Readers racing writers of one key must always see one version in full.
func testConcurrentSameKey(t *testing.T, ctx context.Context, s blob.Store) {
	const key = "same/key"
	versions := [][]byte{
		bytes.Repeat([]byte("A"), 512<<10),
		bytes.Repeat([]byte("bb"), 350<<10), // different length and bytes
	}
	put(t, ctx, s, key, versions[0])

	const writers, putsEach, readers = 3, 8, 4
	var (
		wg      sync.WaitGroup
		done    atomic.Bool
		mu      sync.Mutex
		failure error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if failure == nil {
			failure = err
		}
	}
	var writersWG sync.WaitGroup
	for w := range writers {
		writersWG.Go(func() {
			for i := range putsEach {
				v := versions[(w+i)%2]
				if err := s.Put(ctx, key, onlyReader{bytes.NewReader(v)}, nil); err != nil {
					fail(fmt.Errorf("writer %d Put #%d: %w", w, i, err))
					return
				}
			}
		})
	}
	var reads atomic.Int64
	for r := range readers {
		wg.Go(func() {
			// Read at least once, and until every writer is done.
			for first := true; first || !done.Load(); first = false {
				got, err := read(ctx, s, key)
				if err != nil {
					fail(fmt.Errorf("reader %d Get: %w", r, err))
					return
				}
				if !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
					fail(fmt.Errorf("reader %d saw a mixed or partial object: %d bytes %s", r, len(got), preview(got)))
					return
				}
				reads.Add(1)
			}
		})
	}
	writersWG.Wait()
	done.Store(true)
	wg.Wait()
	if failure != nil {
		t.Fatal(failure)
	}
	t.Logf("%d reads raced %d puts", reads.Load(), writers*putsEach)
}

// Puts and Deletes under one prefix at once: a driver that removes emptied
// directories must not make a concurrent Put into them fail.
func testConcurrentSharedPrefix(t *testing.T, ctx context.Context, s blob.Store) {
	const workers, rounds = 8, 6
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				key := fmt.Sprintf("pd/%d/w%d-%d", i%2, w, i)
				data := []byte(key)
				if err := s.Put(ctx, key, onlyReader{bytes.NewReader(data)}, nil); err != nil {
					errs <- fmt.Errorf("Put(%q): %w", key, err)
					return
				}
				got, err := read(ctx, s, key)
				if err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("Get(%q) after Put = %q, %v", key, got, err)
					return
				}
				if err := s.Delete(ctx, key); err != nil {
					errs <- fmt.Errorf("Delete(%q): %w", key, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
