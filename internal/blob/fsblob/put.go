package fsblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/postern/postern/internal/blob"
)

// renameAttempts bounds how often Put recreates a parent directory that a
// concurrent Delete pruned between Put's mkdir and its rename.
const renameAttempts = 8

// copyBufSize is the chunk in which Put streams r to disk.
const copyBufSize = 32 << 10

// Put writes r to key atomically and durably; see blob.Store. The object is
// streamed into a temp file that only replaces key (by rename) once its data
// is on disk, so a failure at any point before leaves key as it was, and Put
// returns only once the rename is on disk too.
//
// In SyncGroup mode both of those waits use the same group barrier, so one
// syncfs serves the writers whose data needs flushing and those whose rename
// does, whichever phase each is in.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, _ *blob.PutOptions) error {
	return s.put(ctx, key, r, true)
}

// PutUnsynced writes r to key atomically (temp file, rename) but does not
// wait for the disk: the object may be lost or absent after a crash until a
// later SyncAll returns. It is for writers that keep their own durable copy
// until then (the local spool), so many objects share one flush.
func (s *Store) PutUnsynced(ctx context.Context, key string, r io.Reader) error {
	return s.put(ctx, key, r, false)
}

// SyncAll makes every earlier PutUnsynced durable with one syncfs(2) of the
// store's filesystem. It fails on platforms without syncfs; use Put there.
func (s *Store) SyncAll() error {
	if !syncfsSupported {
		return errors.New("fsblob: SyncAll needs syncfs(2), which this platform lacks")
	}
	f, err := os.Open(s.root)
	if err != nil {
		return fmt.Errorf("fsblob: sync all: %w", err)
	}
	err = syncfs(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsblob: sync all: %w", err)
	}
	return nil
}

// CreateUnsynced writes a new object straight to key's path, with no temp
// file or rename and no flush. It fails with an error wrapping fs.ErrExist
// if key exists. The write is not atomic: nothing may read key until
// CreateUnsynced returns, and on failure the partial object is removed. It
// is for a writer that alone knows the object is new (the spool's mover,
// before it queues the job that names it); see PutUnsynced.
func (s *Store) CreateUnsynced(ctx context.Context, key string, r io.Reader) error {
	dst, err := s.Path(key)
	if err != nil {
		return err
	}
	f, err := s.openMaking(key, dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY)
	if err != nil {
		return fmt.Errorf("fsblob: create %s: %w", key, err)
	}
	buf := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(buf)
	_, err = io.CopyBuffer(writerOnly{f}, blob.ContextReader(ctx, r), *buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(dst)
		return fmt.Errorf("fsblob: create %s: %w", key, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, key string, r io.Reader, durable bool) error {
	dst, err := s.Path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fsblob: put %s: %w", key, err)
	}
	tmp, err := s.writeTemp(ctx, r, durable && s.mode == SyncEach)
	if err != nil {
		return fmt.Errorf("fsblob: put %s: %w", key, err)
	}
	published := false
	defer func() {
		if !published {
			_ = os.Remove(tmp)
		}
	}()
	if durable && s.mode == SyncGroup {
		// Data first: a rename that reached the disk before the data
		// would leave an empty or torn file after a crash.
		if err := s.group.Wait(ctx); err != nil {
			return fmt.Errorf("fsblob: put %s: sync data: %w", key, err)
		}
	}
	// Last point at which Put can still fail without a visible change.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fsblob: put %s: %w", key, err)
	}
	created, err := s.rename(tmp, key, dst)
	defer s.pending.release(created...)
	if err != nil {
		return fmt.Errorf("fsblob: put %s: %w", key, err)
	}
	published = true
	if !durable {
		return nil
	}
	// The object is visible now, so this wait must not give up on ctx:
	// an error here would report failure for a write that happened.
	if err := s.syncDirs(context.WithoutCancel(ctx), s.renameDirs(dst, created)); err != nil {
		return fmt.Errorf("fsblob: put %s: sync rename: %w", key, err)
	}
	return nil
}

// renameDirs lists the directories to fsync so that dst's entry and every
// directory leading to it are durable: dst's own directory, and the parent of
// each directory this Put or a Put still in flight created (see pendingDirs).
// SyncGroup needs no list: its syncfs covers every directory.
func (s *Store) renameDirs(dst string, created []string) []string {
	if s.mode == SyncGroup {
		return nil
	}
	dirs := []string{filepath.Dir(dst)}
	for _, d := range slices.Concat(created, s.pending.pendingAncestors(s.objects, filepath.Dir(dst))) {
		if p := filepath.Dir(d); !slices.Contains(dirs, p) {
			dirs = append(dirs, p)
		}
	}
	return dirs
}

// writeTemp streams r into a new temp file and closes it, fsynced if sync.
// It returns the file's path; on error no file is left.
func (s *Store) writeTemp(ctx context.Context, r io.Reader, sync bool) (path string, err error) {
	f, err := os.CreateTemp(s.temp, "put-*")
	if err != nil {
		return "", fmt.Errorf("create temp: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	buf := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(buf)
	// writerOnly hides f's ReadFrom, which would bypass buf with a fresh
	// 32 KiB allocation for every Put.
	if _, err := io.CopyBuffer(writerOnly{f}, blob.ContextReader(ctx, r), *buf); err != nil {
		return "", fmt.Errorf("write temp: %w", err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			return "", fmt.Errorf("sync temp: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close temp: %w", err)
	}
	return f.Name(), nil
}

// rename moves tmp to dst (key's path), creating key's missing parent
// directories, and returns those it created, registered in s.pending: the
// caller releases them once their parents are synced. A concurrent Delete may
// prune a directory between mkdir and rename; the loop then creates it again.
func (s *Store) rename(tmp, key, dst string) (created []string, err error) {
	for range renameAttempts {
		err = os.Rename(tmp, dst)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		dirs, merr := s.mkdirParents(key)
		created = append(created, dirs...)
		if merr != nil && !errors.Is(merr, fs.ErrNotExist) {
			return created, merr
		}
	}
	if err != nil {
		return created, fmt.Errorf("rename into place: %w", err)
	}
	return created, nil
}

// mkdirParents creates the directories of key's parent elements, top down,
// and returns those it created, still registered in s.pending. An element
// that exists as a file is left for rename to report (ENOTDIR).
func (s *Store) mkdirParents(key string) (created []string, err error) {
	// Usually only the deepest directory is missing (a new message's own),
	// so try it first and climb only on ENOENT: one mkdir, not one per level.
	var missing []string
	for d := filepath.Dir(filepath.Join(s.objects, filepath.FromSlash(key))); len(d) > len(s.objects); d = filepath.Dir(d) {
		missing = append(missing, d)
		s.pending.add(d) // before mkdir: see pendingDirs
		err := os.Mkdir(d, dirPerm)
		if err == nil {
			created = append(created, d)
			missing = missing[:len(missing)-1]
			break
		}
		s.pending.release(d)
		if errors.Is(err, fs.ErrExist) {
			missing = missing[:len(missing)-1]
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return created, fmt.Errorf("mkdir: %w", err)
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		s.pending.add(d)
		switch err := os.Mkdir(d, dirPerm); {
		case err == nil:
			created = append(created, d)
		case errors.Is(err, fs.ErrExist):
			s.pending.release(d)
		default:
			s.pending.release(d)
			return created, fmt.Errorf("mkdir: %w", err)
		}
	}
	return created, nil
}

// writerOnly exposes only Write.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }
