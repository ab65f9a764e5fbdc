package fsblob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/blob/blobtest"
)

func newStore(t testing.TB, dir string, mode SyncMode) *Store {
	t.Helper()
	s, err := New(dir, Options{Sync: mode, Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// tWriter sends log lines to the test log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, mode := range []SyncMode{SyncEach, SyncGroup} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			blobtest.Run(t, func(t *testing.T) blob.Store {
				s := newStore(t, t.TempDir(), mode)
				t.Cleanup(func() { assertNoTemps(t, s) })
				return s
			})
		})
	}
}

// assertNoTemps fails if any Put left its temp file behind.
func assertNoTemps(t *testing.T, s *Store) {
	t.Helper()
	ents, err := os.ReadDir(s.temp)
	if err != nil {
		t.Fatalf("read temp dir: %v", err)
	}
	for _, e := range ents {
		t.Errorf("temp file left behind: %s", e.Name())
	}
}

func TestNewRemovesStaleTemps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newStore(t, dir, SyncEach)
	stale := filepath.Join(s.temp, "put-crashed")
	fresh := filepath.Join(s.temp, "put-in-flight")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("half a message"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTempAge)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}

	newStore(t, dir, SyncEach) // a restart after a crash
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp file still there (stat err %v)", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("recent temp file, possibly another process's Put in flight, was removed: %v", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	if _, err := New("", Options{}); err == nil {
		t.Error("New with an empty dir succeeded")
	}
	if _, err := New(t.TempDir(), Options{Sync: SyncMode(9)}); err == nil {
		t.Error("New with an unknown sync mode succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(file, Options{}); err == nil {
		t.Error("New on a regular file succeeded")
	}
}

func TestPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newStore(t, dir, SyncEach)
	ctx := t.Context()
	const key = "m/7z/01HZXY/att/000"
	data := []byte("%PDF-1.7 attachment")
	if err := s.Put(ctx, key, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	p, err := s.Path(key)
	if err != nil {
		t.Fatalf("Path: %v", err)
	}
	if !filepath.IsAbs(p) {
		t.Errorf("Path = %q, want an absolute path", p)
	}
	rel, err := filepath.Rel(dir, p)
	if err != nil || !filepath.IsLocal(rel) {
		t.Errorf("Path = %q, not inside the store %q", p, dir)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file at Path = %q, %v; want %q", got, err, data)
	}
	if _, err := s.Path("a/../b"); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Path of an invalid key: err = %v, want ErrInvalidKey", err)
	}
}

// Keys that would resolve outside the root are refused, and nothing is
// written next to or above the store.
func TestKeysEscapingRootRefused(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	s := newStore(t, filepath.Join(parent, "store"), SyncEach)
	ctx := t.Context()
	for _, key := range []string{"../escaped", "../../escaped", "a/../../escaped", "/tmp/escaped", "../store/tmp/escaped", "..\\escaped"} {
		if err := s.Put(ctx, key, strings.NewReader("x"), nil); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Path(key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Path(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	err := filepath.WalkDir(parent, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			t.Errorf("unexpected file %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A key whose parent is an existing object cannot be stored here (it would
// need a file to be a directory); the Put fails cleanly and the object stays.
func TestFileDirectoryConflict(t *testing.T) {
	t.Parallel()
	s := newStore(t, t.TempDir(), SyncEach)
	ctx := t.Context()
	if err := s.Put(ctx, "a", strings.NewReader("file"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/b", strings.NewReader("below"), nil); err == nil {
		t.Fatal(`Put("a/b") over the object "a" succeeded`)
	}
	if err := s.Put(ctx, "c/d", strings.NewReader("below"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "c", strings.NewReader("file"), nil); err == nil {
		t.Fatal(`Put("c") over the prefix of "c/d" succeeded`)
	}
	for key, want := range map[string]string{"a": "file", "c/d": "below"} {
		rc, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		_ = rc.Close()
		if string(got) != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	assertNoTemps(t, s)
}

// Deleting a message's last object removes its now empty directories, so
// expired messages leave no directory each behind, but not the shared ones.
func TestDeletePrunesEmptyDirs(t *testing.T) {
	t.Parallel()
	s := newStore(t, t.TempDir(), SyncEach)
	ctx := t.Context()
	keys := []string{"m/ab/ID1/raw.eml", "m/ab/ID1/att/000", "m/ab/ID2/raw.eml"}
	for _, k := range keys {
		if err := s.Put(ctx, k, strings.NewReader(k), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range keys[:2] {
		if err := s.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(s.objects, "m", "ab", "ID1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("emptied message directory still there (stat err %v)", err)
	}
	if _, err := os.Stat(filepath.Join(s.objects, "m", "ab", "ID2", "raw.eml")); err != nil {
		t.Errorf("sibling message lost: %v", err)
	}
	if err := s.Delete(ctx, keys[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.objects); err != nil {
		t.Errorf("objects root pruned: %v", err)
	}
	if ents, _ := os.ReadDir(s.objects); len(ents) != 0 {
		t.Errorf("objects root not empty after deleting everything: %d entries", len(ents))
	}
}

// In SyncGroup mode a Put waits for one shared sync after writing its data
// and another after the rename: the object must not be in place at the first
// and must be at the second, and Put must not return before the second ends.
func TestSyncGroupOrdersDataRenameSync(t *testing.T) {
	t.Parallel()
	s := newStore(t, t.TempDir(), SyncGroup)
	const key = "m/xy/ID/raw.eml"
	p, err := s.Path(key)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		visible []bool
	)
	s.group = newGroupSync(func() error {
		_, err := os.Stat(p)
		mu.Lock()
		visible = append(visible, err == nil)
		mu.Unlock()
		return nil
	})
	if err := s.Put(t.Context(), key, strings.NewReader("body"), nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(visible) != 2 || visible[0] || !visible[1] {
		t.Fatalf("object visible at each sync = %v, want [false true]", visible)
	}
}

// A failing data sync fails the Put and publishes nothing.
func TestSyncGroupDataSyncErrorPublishesNothing(t *testing.T) {
	t.Parallel()
	s := newStore(t, t.TempDir(), SyncGroup)
	s.group = newGroupSync(func() error { return errors.New("EIO") })
	ctx := t.Context()
	if err := s.Put(ctx, "k", strings.NewReader("body"), nil); err == nil {
		t.Fatal("Put succeeded though its sync failed")
	}
	if _, err := s.Stat(ctx, "k"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat after a failed Put = %v, want ErrNotFound", err)
	}
	assertNoTemps(t, s)
}

// Once the rename happened, a cancelled context must not turn the Put into a
// reported failure: the object is visible, so Put waits for its sync.
func TestSyncGroupCancelAfterRenameStillSucceeds(t *testing.T) {
	t.Parallel()
	s := newStore(t, t.TempDir(), SyncGroup)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	calls := 0
	s.group = newGroupSync(func() error {
		calls++
		if calls == 2 { // the sync after the rename
			cancel()
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	})
	if err := s.Put(ctx, "k", strings.NewReader("body"), nil); err != nil {
		t.Fatalf("Put = %v after its object became visible", err)
	}
}

// CreateUnsynced and PutUnsynced write objects readable like any other;
// CreateUnsynced refuses an existing key and leaves nothing when it fails.
func TestUnsyncedWrites(t *testing.T) {
	t.Parallel()
	s := newStore(t, t.TempDir(), SyncEach)
	ctx := context.Background()
	read := func(key string) string { return readObject(t, s, key) }
	if err := s.CreateUnsynced(ctx, "m/ab/id1/raw.eml", strings.NewReader("first")); err != nil {
		t.Fatal(err)
	}
	if got := read("m/ab/id1/raw.eml"); got != "first" {
		t.Fatalf("read %q", got)
	}
	if err := s.CreateUnsynced(ctx, "m/ab/id1/raw.eml", strings.NewReader("again")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("create over an existing key: %v, want ErrExist", err)
	}
	if err := s.PutUnsynced(ctx, "m/ab/id1/raw.eml", strings.NewReader("replaced")); err != nil {
		t.Fatal(err)
	}
	if got := read("m/ab/id1/raw.eml"); got != "replaced" {
		t.Fatalf("read %q", got)
	}
	broken := io.MultiReader(strings.NewReader("part"), iotest.ErrReader(errors.New("disk full")))
	if err := s.CreateUnsynced(ctx, "m/cd/id2/raw.eml", broken); err == nil {
		t.Fatal("create from a failing reader succeeded")
	}
	if _, err := s.Stat(ctx, "m/cd/id2/raw.eml"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("a failed create left an object: %v", err)
	}
	if err := s.SyncAll(); err != nil && syncfsSupported {
		t.Fatal(err)
	}
}

// readObject returns the object key holds, failing the test if it cannot.
func readObject(t *testing.T, s *Store, key string) string {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
