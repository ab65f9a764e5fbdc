package loadgen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/postern/postern/internal/ingest"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/smtpd"
)

// leanIngester is a measurement prototype, not a store: the least flushing
// that still makes a message durable before 250 with the gateway's data
// layout. It writes the raw message and the envelope straight to their final
// paths (no temp file and rename: ids are never reused, and until the job is
// queued nothing refers to a half-written file, which is an orphan like any
// other failed write), waits for ONE filesystem-wide flush shared with every
// session writing at the same time (syncfs, group commit), and then queues
// the job (bbolt's own group commit). Two flush waits per message instead of
// the seven of fsblob.SyncEach, all of them shared. The benchmark measures
// it as "ingest-lean" to show what a store API with an explicit barrier
// (write several objects unsynced, then one shared sync) would give.
//
// With perFile set it flushes without syncfs: it fsyncs the two files and
// the directories it created, all at once, and leaves it to the filesystem
// to fold concurrent fsyncs into shared journal commits, as the durable
// ceiling does ("ingest-lean-fsync").
type leanIngester struct {
	objects string
	queue   ingest.Sender
	root    *os.File // the store's root, held open for syncfs
	barrier *barrier
	perFile bool
}

var _ smtpd.Ingester = (*leanIngester)(nil)

func newLeanIngester(storeDir string, q ingest.Sender, perFile bool) (*leanIngester, error) {
	objects := filepath.Join(storeDir, "objects")
	if err := os.MkdirAll(objects, 0o700); err != nil {
		return nil, fmt.Errorf("loadgen: lean store: %w", err)
	}
	root, err := os.Open(storeDir)
	if err != nil {
		return nil, fmt.Errorf("loadgen: lean store: %w", err)
	}
	l := &leanIngester{objects: objects, queue: q, root: root, perFile: perFile}
	l.barrier = &barrier{sync: l.syncfs}
	return l, nil
}

// syncfs flushes the whole filesystem holding the store: every session's
// files and directory entries written before it started.
func (l *leanIngester) syncfs() error {
	rc, err := l.root.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Syncfs(int(fd)) }); err != nil {
		return err
	}
	return serr
}

// Close releases the store's root descriptor.
func (l *leanIngester) Close() error { return l.root.Close() }

// Accept follows ingest.Ingester.Accept's contract.
func (l *leanIngester) Accept(ctx context.Context, env *postern.Envelope, body io.Reader) error {
	dir := filepath.Join(l.objects, filepath.FromSlash(env.ID.Prefix()))
	shard := filepath.Dir(dir)
	_, serr := os.Stat(shard)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("lean: %w", err)
	}
	h := sha256.New()
	n, err := writeNew(filepath.Join(dir, "raw.eml"), io.TeeReader(body, h))
	if err != nil {
		return fmt.Errorf("lean: store raw %s: %w", env.ID, err)
	}
	env.Size, env.SHA256, env.V = n, hex.EncodeToString(h.Sum(nil)), postern.EnvelopeVersion
	eb, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("lean: %w", err)
	}
	if _, err := writeNew(filepath.Join(dir, "envelope.json"), bytes.NewReader(eb)); err != nil {
		return fmt.Errorf("lean: store envelope %s: %w", env.ID, err)
	}
	flush := func() error { return l.barrier.wait(ctx) }
	if l.perFile {
		// The files' data and inodes, the message directory's entries, and
		// the entry for the message directory (and for the shard directory
		// when this message created it).
		paths := []string{filepath.Join(dir, "raw.eml"), filepath.Join(dir, "envelope.json"), dir, shard}
		if serr != nil {
			paths = append(paths, filepath.Dir(shard))
		}
		flush = func() error { return fsyncAll(paths) }
	}
	if err := flush(); err != nil {
		return fmt.Errorf("lean: sync %s: %w", env.ID, err)
	}
	jb, err := json.Marshal(postern.ParseJob{V: postern.JobVersion, ID: env.ID, Envelope: *env})
	if err != nil {
		return fmt.Errorf("lean: %w", err)
	}
	if _, err := l.queue.Send(ctx, jb, 0); err != nil {
		return fmt.Errorf("lean: enqueue %s: %w", env.ID, err)
	}
	return nil
}

// fsyncAll fsyncs every path at once and waits for all of them.
func fsyncAll(paths []string) error {
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Go(func() {
			f, err := os.Open(p)
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = errors.Join(f.Sync(), f.Close())
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func writeNew(path string, r io.Reader) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 32<<10)
	n, err := io.CopyBuffer(writerOnly{f}, readerOnly{r}, buf)
	return n, errors.Join(err, f.Close())
}

// barrier is group commit over one expensive sync: wait returns once a sync
// that started after wait was called has finished. Callers arriving while a
// sync runs share the next one.
type barrier struct {
	sync func() error

	mu      sync.Mutex
	next    *round
	running bool
}

type round struct {
	done chan struct{}
	err  error
}

func (b *barrier) wait(ctx context.Context) error {
	b.mu.Lock()
	if b.next == nil {
		b.next = &round{done: make(chan struct{})}
	}
	r := b.next
	if !b.running {
		b.running = true
		go b.lead()
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *barrier) lead() {
	for {
		b.mu.Lock()
		r := b.next
		b.next = nil
		if r == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		r.err = b.sync()
		close(r.done)
	}
}
