// Package fsblob is the blob.Store driver for a local directory: the store of
// the one-machine mode. Writes are atomic (temp file, then rename) and durable
// (fsync) before Put returns; concurrent writers may share syncs (SyncGroup).
package fsblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/postern/postern/internal/atomicfile"
	"github.com/postern/postern/internal/blob"
)

var _ blob.Store = (*Store)(nil)

// ErrInvalidKey is returned (wrapped) for a key that blob.ValidKey refuses.
var ErrInvalidKey = errors.New("fsblob: invalid key")

// SyncMode says how Put makes a write durable.
type SyncMode int

const (
	// SyncEach fsyncs each object's file and then its directory: one Put
	// costs at least two device flushes of its own. The default.
	SyncEach SyncMode = iota
	// SyncGroup makes concurrent Puts share flushes: each waits for a
	// syncfs(2) of the store's filesystem after writing its data and
	// again after renaming it into place. Throughput under concurrency is
	// much higher; a lone Put costs about the same as with SyncEach. It
	// flushes everything dirty on that filesystem, so give the store a
	// filesystem that is not busy with unrelated writes. Linux only.
	SyncGroup
)

func (m SyncMode) String() string {
	switch m {
	case SyncEach:
		return "each"
	case SyncGroup:
		return "group"
	}
	return fmt.Sprintf("SyncMode(%d)", int(m))
}

// Options configure a Store. The zero value is valid.
type Options struct {
	Sync SyncMode
	// Logger receives start-up housekeeping notes; nil discards them.
	Logger *slog.Logger
}

// Directory layout under the root. Objects and temp files live in sibling
// trees so that no key can name a temp file, and on one filesystem so that
// rename is atomic.
const (
	objectsDir = "objects"
	tempDir    = "tmp"
	dirPerm    = 0o700 // the store holds mail: private to the service user
	filePerm   = 0o600
)

// Store is a blob.Store on a local directory. Objects are files under
// <dir>/objects at their key's path. It is safe for concurrent use. Writers
// should share one Store per directory: batching and the durability of newly
// created directories are coordinated within a Store; other Stores on the
// same directory (a tool reading the archive) are fine as readers.
//
// Keys where one is a path prefix of the other ("a" and "a/b") cannot both
// exist, since "a" would have to be a file and a directory; the second Put
// fails. Postern's keys never do this.
type Store struct {
	root    string // absolute
	objects string // root/objects
	temp    string // root/tmp
	mode    SyncMode
	rootDir *os.File   // held open for syncfs; nil in SyncEach mode
	group   *groupSync // nil in SyncEach mode; see Put for its two uses
	bufs    sync.Pool  // *[]byte of copyBufSize, reused across Puts
	pending pendingDirs
}

// New opens (creating if needed) a store in dir. Temp files that a crashed
// process left behind are removed here, before any Put can be in flight.
func New(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("fsblob: empty directory")
	}
	if opts.Sync != SyncEach && opts.Sync != SyncGroup {
		return nil, fmt.Errorf("fsblob: unknown sync mode %v", opts.Sync)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fsblob: %w", err)
	}
	s := &Store{
		root:    root,
		objects: filepath.Join(root, objectsDir),
		temp:    filepath.Join(root, tempDir),
		mode:    opts.Sync,
	}
	s.bufs.New = func() any { b := make([]byte, copyBufSize); return &b }
	_, statErr := os.Stat(root)
	for _, d := range []string{root, s.objects, s.temp} {
		if err := os.MkdirAll(d, dirPerm); err != nil {
			return nil, fmt.Errorf("fsblob: create %s: %w", d, err)
		}
	}
	// Make the layout durable, and the root's own entry if we made it.
	dirs := []string{root}
	if errors.Is(statErr, fs.ErrNotExist) {
		dirs = append(dirs, filepath.Dir(root))
	}
	for _, d := range dirs {
		if err := atomicfile.SyncDir(d); err != nil {
			return nil, fmt.Errorf("fsblob: sync dir: %w", err)
		}
	}
	if err := s.removeStaleTemps(log); err != nil {
		return nil, err
	}
	if s.mode == SyncGroup {
		if !syncfsSupported {
			return nil, errors.New("fsblob: SyncGroup needs syncfs(2), which this platform lacks")
		}
		f, err := os.Open(root)
		if err != nil {
			return nil, fmt.Errorf("fsblob: open root for syncfs: %w", err)
		}
		s.rootDir = f
		s.group = newGroupSync(func() error { return syncfs(f) })
	}
	return s, nil
}

// Close releases the root descriptor held for syncfs. Calls in flight must
// have returned.
func (s *Store) Close() error {
	if s.rootDir == nil {
		return nil
	}
	if err := s.rootDir.Close(); err != nil {
		return fmt.Errorf("fsblob: close: %w", err)
	}
	return nil
}

// Path returns the file that holds key's object, whether or not it exists
// yet. The one-machine mode hands it out to reference stored attachments; the
// file must be treated as read-only.
func (s *Store) Path(key string) (string, error) {
	if !blob.ValidKey(key) {
		return "", fmt.Errorf("%w %q", ErrInvalidKey, key)
	}
	// ValidKey admits no "", "." or ".." element and no leading slash, so
	// the joined path cannot leave s.objects.
	return filepath.Join(s.objects, filepath.FromSlash(key)), nil
}

// Get opens key's object. Reading the returned file is not bound to ctx: it
// is a local file, and a replace or delete of the key does not disturb it.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.Path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fsblob: get %s: %w", key, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("fsblob: get %s: %w", key, notFound(err))
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("fsblob: get %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("fsblob: get %s: %w", key, blob.ErrNotFound)
	}
	return f, nil
}

// Stat reports key's size and modification time.
func (s *Store) Stat(ctx context.Context, key string) (blob.Attrs, error) {
	p, err := s.Path(key)
	if err != nil {
		return blob.Attrs{}, err
	}
	if err := ctx.Err(); err != nil {
		return blob.Attrs{}, fmt.Errorf("fsblob: stat %s: %w", key, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return blob.Attrs{}, fmt.Errorf("fsblob: stat %s: %w", key, notFound(err))
	}
	if !fi.Mode().IsRegular() {
		return blob.Attrs{}, fmt.Errorf("fsblob: stat %s: %w", key, blob.ErrNotFound)
	}
	return blob.Attrs{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes key's object; a missing key is not an error, as in S3. The
// removal is durable before Delete returns, and directories it leaves empty
// are pruned so that expired messages do not leave a directory each behind.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.Path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fsblob: delete %s: %w", key, err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("fsblob: delete %s: %w", key, err)
	}
	if fi.IsDir() {
		return nil // a prefix of other keys, not an object
	}
	if err := os.Remove(p); err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("fsblob: delete %s: %w", key, err)
	}
	if err := s.syncDirs(ctx, []string{filepath.Dir(p)}); err != nil {
		return fmt.Errorf("fsblob: delete %s: %w", key, err)
	}
	s.pruneEmptyDirs(filepath.Dir(p))
	return nil
}

// pruneEmptyDirs removes dir and its ancestors below s.objects while they are
// empty. rmdir refuses a non-empty directory, so a concurrent Put loses
// nothing; at worst its rename finds the directory gone and Put recreates it.
func (s *Store) pruneEmptyDirs(dir string) {
	for dir != s.objects && len(dir) > len(s.objects) {
		if err := syscall.Rmdir(dir); err != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// syncDirs makes directory entry changes in dirs durable: an fsync of each
// in SyncEach mode, one shared syncfs in SyncGroup mode. A directory that no
// longer exists was pruned by a concurrent Delete, whose outcome then stands.
func (s *Store) syncDirs(ctx context.Context, dirs []string) error {
	if s.mode == SyncGroup {
		return s.group.Wait(ctx)
	}
	for _, d := range dirs {
		if err := atomicfile.SyncDir(d); err != nil && !isNotFound(err) {
			return fmt.Errorf("sync dir: %w", err)
		}
	}
	return nil
}

// isNotFound reports whether err means that no file is at the path: it is
// missing, or an element of the path is a file (ENOTDIR).
func isNotFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// notFound maps "no such file" to blob.ErrNotFound and leaves other errors.
func notFound(err error) error {
	if isNotFound(err) {
		return blob.ErrNotFound
	}
	return err
}
