package spool

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue/fsqueue"
)

// Store is where the mover puts messages. A write need not be durable
// until SyncAll returns (fsblob's PutUnsynced, CreateUnsynced and SyncAll).
// CreateUnsynced writes an object known to be new, cheaply and not
// atomically; PutUnsynced replaces one atomically.
type Store interface {
	PutUnsynced(ctx context.Context, key string, r io.Reader) error
	CreateUnsynced(ctx context.Context, key string, r io.Reader) error
	SyncAll() error
}

// Queue takes a batch of jobs together with the mover's progress, both or
// neither (fsqueue's SendBatch).
type Queue interface {
	SendBatch(ctx context.Context, bodies [][]byte, mark *fsqueue.Mark) error
}

// Marks keeps the mover's progress (fsqueue's DB), in the same file as the
// queue so that progress and jobs commit together.
type Marks interface {
	GetMark(ctx context.Context, key string) ([]byte, error)
	SetMark(ctx context.Context, m fsqueue.Mark) error
}

// markKey names the mover's progress in the queue file.
const markKey = "spool"

// memLimit is how much of one message the mover holds in memory before it
// streams the rest to the store.
const memLimit = 256 << 10

// maxBatch bounds the jobs queued in one transaction. Catching up after a
// burst (tens of thousands of small messages) in one batch held every job
// and the whole write transaction in memory: 230 MiB for 40,000 messages.
const maxBatch = 1000

// Mover copies committed messages from the log into the store and their
// jobs into the queue. Its progress is two positions, kept in the queue
// file: applied (every commit before it has its job queued; moved
// atomically with the jobs) and checkpoint (every message committed before
// it is durable in the store, and no message still open began before it).
// Reading starts again from checkpoint after a crash or an error, putting
// objects again (the same bytes under the same keys) but queueing only the
// jobs of commits at or after applied, so no job is lost or doubled.
type Mover struct {
	s     *Spool
	store Store
	queue Queue
	marks Marks
	log   *slog.Logger

	pos, applied, checkpoint Pos
	// seen is the furthest the mover has read: a message first met beyond
	// it has never been put, so its objects are new and need no atomic
	// replace (nothing reads them before its job is queued). Behind it
	// (after a rewind, or replaying an earlier run's log) they may exist
	// and be read, so they are replaced atomically.
	seen Pos
	open map[string]*pending
	// spans are the messages committed since the checkpoint that began
	// before their commit frame: a checkpoint inside one would have a
	// rewind meet its commit without its first chunks.
	spans          []span
	jobs           [][]byte
	dirty          bool // objects put since the last SyncAll
	lastCheckpoint time.Time

	f   *os.File // segment being read
	seg uint64
	br  *bufio.Reader
	fr  frameReader

	hold       atomic.Pointer[holdPolicy]
	caughtUpAt time.Time // when step last reached the durable end
	health     moverHealth

	stop    chan struct{}
	halt    chan struct{} // tests: stop dead, as a crash would
	stopped chan struct{}
}

// span is where a message's frames began and where its commit frame is.
type span struct{ start, commit Pos }

// pending is a message whose commit frame has not been read yet.
type pending struct {
	start Pos
	fresh bool
	key   string
	buf   []byte
	pw    *io.PipeWriter // set once the message outgrew memLimit
	done  chan error
	// sum hashes a streamed message's bytes as they pass, for
	// Options.Complete; one held in memory is hashed only if asked.
	sum hash.Hash
}

// digest is the SHA-256 of p's bytes.
func (p *pending) digest() []byte {
	if p.sum != nil {
		return p.sum.Sum(nil)
	}
	d := sha256.Sum256(p.buf)
	return d[:]
}

// NewMover returns a mover for s. Call Replay, then Start.
func NewMover(s *Spool, store Store, queue Queue, marks Marks) *Mover {
	return &Mover{s: s, store: store, queue: queue, marks: marks, log: s.log, open: map[string]*pending{},
		br: bufio.NewReaderSize(nil, 256<<10), stop: make(chan struct{}), halt: make(chan struct{}), stopped: make(chan struct{})}
}

// Replay loads the mover's progress and moves everything the log held
// before this process started. Call it before anything reads the queue:
// objects of jobs already queued may need putting again after a crash.
func (m *Mover) Replay(ctx context.Context) error {
	v, err := m.marks.GetMark(ctx, markKey)
	if err != nil {
		return fmt.Errorf("spool: load progress: %w", err)
	}
	if len(v) == 32 {
		m.applied = Pos{Seg: binary.BigEndian.Uint64(v[0:]), Off: int64(binary.BigEndian.Uint64(v[8:]))}
		m.checkpoint = Pos{Seg: binary.BigEndian.Uint64(v[16:]), Off: int64(binary.BigEndian.Uint64(v[24:]))}
	} else if v != nil {
		return fmt.Errorf("spool: progress mark of %d bytes, want 32", len(v))
	}
	m.pos = m.checkpoint
	_, firstNew := m.s.positions()
	m.seen = Pos{Seg: firstNew}
	if err := m.step(ctx); err != nil {
		return err
	}
	return m.doCheckpoint(ctx)
}

// holdPolicy is HoldWhile's setting.
type holdPolicy struct {
	busy func() bool
	lag  time.Duration
}

// HoldWhile lets the mover wait while busy reports true (SMTP clients are
// uploading), for at most lag after it last caught up: on one machine the
// front door and the mover share the CPUs, and a burst is acknowledged
// faster when the copying waits for it to pass. Messages are durable in the
// log meanwhile; only their processing starts later.
func (m *Mover) HoldWhile(busy func() bool, lag time.Duration) {
	m.hold.Store(&holdPolicy{busy: busy, lag: lag})
}

// holding reports whether the mover should wait now.
func (m *Mover) holding() bool {
	h := m.hold.Load()
	return h != nil && h.lag > 0 && time.Since(m.caughtUpAt) < h.lag && h.busy()
}

// Start runs the mover until Stop.
func (m *Mover) Start() { go m.run() }

// Stop moves what is durable in the log, makes it durable in the store,
// and ends the mover. If ctx ends first the rest is left for the next
// start's Replay.
func (m *Mover) Stop(ctx context.Context) error {
	close(m.stop)
	select {
	case <-m.stopped:
	case <-ctx.Done():
		// Still running (a store that hangs): leave it its state.
		return fmt.Errorf("spool: mover did not finish: %w", ctx.Err())
	}
	var err error
	if m.f != nil {
		err = m.f.Close()
	}
	for id, p := range m.open {
		m.discard(p)
		delete(m.open, id)
	}
	return err
}

func (m *Mover) run() {
	defer close(m.stopped)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	every := m.s.opts.CheckpointEvery
	failures := 0
	m.caughtUpAt = time.Now()
	m.health.attempt(nil, m.s.opts.now())
	for {
		var err error
		if m.holding() {
			select {
			case <-time.After(10 * time.Millisecond):
				continue
			case <-m.halt:
				return
			case <-m.stop:
			}
		} else if err = m.step(ctx); err == nil {
			m.caughtUpAt = time.Now()
		}
		if err == nil && time.Since(m.lastCheckpoint) >= every {
			err = m.doCheckpoint(ctx)
		}
		m.health.attempt(err, m.s.opts.now())
		var wait <-chan time.Time
		if err != nil {
			failures++
			m.log.Error("spool: moving messages to the store and queue failed; retrying from the last checkpoint",
				slog.String("stage", "gateway"), slog.Int("attempt", failures), slog.String("error", err.Error()))
			m.reset()
			wait = time.After(postern.Backoff(failures, 100*time.Millisecond, 10*time.Second))
		} else {
			failures = 0
			wait = time.After(every)
		}
		select {
		case <-m.s.moved:
		case <-wait:
		case <-m.halt:
			return
		case <-m.stop:
			if err := m.step(ctx); err != nil {
				m.log.Error("spool: final move failed; the next start replays it", slog.String("error", err.Error()))
				return
			}
			if err := m.doCheckpoint(ctx); err != nil {
				m.log.Error("spool: final checkpoint failed; the next start replays it", slog.String("error", err.Error()))
			}
			return
		}
	}
}

// reset forgets everything read since the checkpoint.
func (m *Mover) reset() {
	for id, p := range m.open {
		m.discard(p)
		delete(m.open, id)
	}
	m.jobs = nil
	m.spans = m.spans[:0] // read again from the checkpoint, so found again
	m.pos = m.checkpoint
	if m.f != nil {
		m.f.Close()
		m.f = nil
	}
}

// step moves every frame that is durable, then queues the jobs found.
func (m *Mover) step(ctx context.Context) error {
	for {
		durable, firstNew := m.s.positions()
		if m.pos.Seg == 0 || m.pos.Seg < durable.Seg {
			more, err := m.readSealed(ctx, durable, firstNew)
			if err != nil {
				return err
			}
			if more {
				continue
			}
		}
		if m.pos.Seg == durable.Seg && m.pos.Off < durable.Off {
			if err := m.read(ctx, durable.Off-m.pos.Off, false); err != nil {
				return err
			}
		}
		break
	}
	m.dropAborted()
	return m.flushJobs(ctx)
}

// readSealed reads the rest of segment m.pos.Seg, which no longer takes
// writes, and moves to the next. It reports whether there may be more.
func (m *Mover) readSealed(ctx context.Context, durable Pos, firstNew uint64) (bool, error) {
	if m.pos.Seg == 0 {
		// No progress recorded: start at the oldest segment.
		segs, err := listSegments(m.s.dir)
		if err != nil {
			return false, err
		}
		if len(segs) == 0 {
			return false, nil
		}
		m.pos = Pos{Seg: segs[0]}
		return true, nil
	}
	n := m.s.cutAt(m.pos.Seg)
	if n >= 0 {
		n = max(n-m.pos.Off, 0)
	}
	if err := m.read(ctx, n, true); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
	}
	if m.pos.Seg+1 >= firstNew && m.pos.Seg < firstNew && len(m.open) > 0 {
		// The end of the last segment an earlier process wrote: the
		// sessions still writing these messages died with it, so none was
		// acknowledged. (At the end of an earlier segment a message may
		// go on in the next one, where the log rotated between its chunks.)
		for id, p := range m.open {
			m.discard(p)
			delete(m.open, id)
		}
	}
	m.pos = Pos{Seg: m.pos.Seg + 1}
	return m.pos.Seg <= durable.Seg, nil
}

// read handles frames from m.pos: n bytes of them, or with n < 0 up to the
// end of the segment's readable part.
func (m *Mover) read(ctx context.Context, n int64, sealed bool) error {
	if m.f == nil || m.seg != m.pos.Seg {
		if m.f != nil {
			m.f.Close()
			m.f = nil
		}
		f, err := os.Open(filepath.Join(m.s.dir, segName(m.pos.Seg)))
		if err != nil {
			return fmt.Errorf("spool: open segment: %w", err)
		}
		m.f, m.seg = f, m.pos.Seg
	}
	if n < 0 {
		n = 1 << 62
	}
	m.br.Reset(io.NewSectionReader(m.f, m.pos.Off, n))
	m.fr.r = m.br
	for {
		fr, err := m.fr.next()
		if err == io.EOF {
			return nil
		}
		if err == errTorn {
			if sealed {
				// The tail after the last flush of a process that died.
				return nil
			}
			return fmt.Errorf("spool: segment %d is corrupt at offset %d", m.pos.Seg, m.pos.Off)
		}
		if err != nil {
			return fmt.Errorf("spool: read segment %d: %w", m.pos.Seg, err)
		}
		if err := m.handle(ctx, fr); err != nil {
			return err
		}
		m.pos.Off += fr.size
		if m.seen.Less(m.pos) {
			m.seen = m.pos
		}
		if len(m.jobs) >= maxBatch {
			// Every job before m.pos is in the batch: a consistent mark.
			if err := m.flushJobs(ctx); err != nil {
				return err
			}
		}
	}
}

// handle moves one frame found at m.pos.
func (m *Mover) handle(ctx context.Context, fr frame) error {
	if _, err := postern.ParseMsgID(fr.id); err != nil {
		// Whole and checksummed, but no writer of this log wrote it
		// (Begin takes ULIDs only).
		return m.setAside(fr, fmt.Sprintf("%s-%d.frame", strings.TrimSuffix(segName(m.pos.Seg), ".log"), m.pos.Off), "", "", err)
	}
	p := m.open[fr.id]
	if m.s.isAborted(fr.id) {
		if p != nil {
			m.discard(p)
			delete(m.open, fr.id)
		}
		return nil
	}
	fresh := !m.pos.Less(m.seen)
	if fr.typ == frameChunk {
		if p == nil {
			p = &pending{start: m.pos, fresh: fresh, key: postern.MsgID(fr.id).RawKey()}
			m.open[fr.id] = p
		}
		return m.write(ctx, p, fr.payload)
	}
	delete(m.open, fr.id)
	env, job, err := splitCommit(fr.payload)
	if p == nil {
		p = &pending{fresh: fresh, key: postern.MsgID(fr.id).RawKey()}
	} else {
		m.spans = append(m.spans, span{start: p.start, commit: m.pos})
	}
	if err := m.finish(ctx, p); err != nil {
		return err
	}
	if err == nil && m.s.opts.Complete != nil {
		env, job, err = m.s.opts.Complete(env, job, p.digest)
	}
	if err != nil {
		// The raw message is in the store; the commit that would have
		// described and queued it is set aside for an operator.
		m.dirty = true
		return m.setAside(fr, fr.id+".commit", fr.id, p.key, err)
	}
	if err := m.put(ctx, postern.MsgID(fr.id).EnvelopeKey(), bytes.NewReader(env), fresh); err != nil {
		return err
	}
	m.dirty = true
	if !m.pos.Less(m.applied) {
		m.jobs = append(m.jobs, bytes.Clone(job))
	}
	return nil
}

// setAside quarantines fr, just read (see quarantine), counts it and
// logs it with the message id when known (id) and where its raw bytes are
// (rawKey). An error stops the mover, to try again: nothing acknowledged is
// passed over unrecorded.
func (m *Mover) setAside(fr frame, name, id, rawKey string, why error) error {
	path, fresh, err := m.quarantine(name, m.fr.hdr[:], fr.payload)
	if err != nil {
		return err
	}
	if !fresh {
		return nil // set aside, counted and logged on an earlier pass
	}
	m.health.quarantined.Add(1)
	attrs := []slog.Attr{slog.String("stage", "gateway"), slog.String("quarantine", path),
		slog.String("position", m.pos.String()), slog.String("error", why.Error())}
	if id != "" {
		attrs = append(attrs, slog.String("msg_id", id))
	}
	if rawKey != "" {
		attrs = append(attrs, slog.String("raw_key", rawKey))
	}
	m.log.LogAttrs(context.Background(), slog.LevelError, "spool: a commit the mover cannot decode was quarantined; its message is not queued", attrs...)
	return nil
}

func (m *Mover) write(ctx context.Context, p *pending, data []byte) error {
	if p.pw == nil && len(p.buf)+len(data) <= memLimit {
		p.buf = append(p.buf, data...)
		return nil
	}
	if p.pw == nil {
		pr, pw := io.Pipe()
		p.pw, p.done = pw, make(chan error, 1)
		head := p.buf
		p.buf = nil
		if m.s.opts.Complete != nil {
			p.sum = sha256.New()
			p.sum.Write(head)
		}
		go func() {
			err := m.put(ctx, p.key, io.MultiReader(bytes.NewReader(head), pr), p.fresh)
			pr.CloseWithError(cmp.Or(err, errPutEnded))
			p.done <- err
		}()
	}
	if p.sum != nil {
		p.sum.Write(data)
	}
	_, err := p.pw.Write(data)
	return err
}

var (
	errPutEnded  = errors.New("spool: put ended")
	errDiscarded = errors.New("spool: message discarded")
)

// put writes an object: created in place if fresh (falling back to an
// atomic replace should it exist after all), else replaced atomically.
func (m *Mover) put(ctx context.Context, key string, r io.Reader, fresh bool) error {
	if fresh {
		err := m.store.CreateUnsynced(ctx, key, r)
		if !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return m.store.PutUnsynced(ctx, key, r)
}

func (m *Mover) finish(ctx context.Context, p *pending) error {
	if p.pw == nil {
		return m.put(ctx, p.key, bytes.NewReader(p.buf), p.fresh)
	}
	p.pw.Close()
	return <-p.done
}

// discard ends a message that will never be committed; a partly written
// object is removed by the store (its Put fails).
func (m *Mover) discard(p *pending) {
	if p.pw != nil {
		p.pw.CloseWithError(errDiscarded)
		<-p.done
		p.pw = nil
	}
	p.buf = nil
}

// dropAborted discards open messages that were abandoned after all their
// frames were read.
func (m *Mover) dropAborted() {
	if len(m.open) == 0 {
		return
	}
	for _, id := range m.s.abortedIDs() {
		if p, ok := m.open[id]; ok {
			m.discard(p)
			delete(m.open, id)
		}
	}
}

// flushJobs queues the jobs found so far and records applied with them.
func (m *Mover) flushJobs(ctx context.Context) error {
	if len(m.jobs) > 0 {
		if err := m.queue.SendBatch(ctx, m.jobs, m.mark(m.pos, m.checkpoint)); err != nil {
			return fmt.Errorf("spool: queue %d jobs: %w", len(m.jobs), err)
		}
		m.applied = m.pos
		m.jobs = nil
	}
	m.s.movedTo(m.pos)
	return nil
}

// doCheckpoint makes the moved objects durable, records how far the log is
// no longer needed, and deletes the segments before that.
func (m *Mover) doCheckpoint(ctx context.Context) error {
	m.lastCheckpoint = time.Now()
	if err := m.flushJobs(ctx); err != nil {
		return err
	}
	cp := m.pos
	for _, p := range m.open {
		if p.start.Less(cp) {
			cp = p.start
		}
	}
	// A rewind to cp reads again every commit at or after it, so each of
	// those messages must begin at or after cp too: else its first chunks
	// are passed over and a put of the rest replaces the whole object.
	for moved := true; moved; {
		moved = false
		for _, sp := range m.spans {
			if !sp.commit.Less(cp) && sp.start.Less(cp) {
				cp, moved = sp.start, true
			}
		}
	}
	if cp == m.checkpoint {
		return nil
	}
	if m.dirty {
		if err := m.store.SyncAll(); err != nil {
			return fmt.Errorf("spool: sync store: %w", err)
		}
		m.dirty = false
	}
	// No jobs are pending, so no commit before pos still needs queueing.
	applied := m.applied
	if applied.Less(m.pos) {
		applied = m.pos
	}
	if err := m.marks.SetMark(ctx, *m.mark(applied, cp)); err != nil {
		return fmt.Errorf("spool: record checkpoint: %w", err)
	}
	m.applied, m.checkpoint = applied, cp
	m.spans = slices.DeleteFunc(m.spans, func(sp span) bool { return sp.commit.Less(cp) })
	m.s.forgetAborted(cp)
	segs, err := listSegments(m.s.dir)
	if err != nil {
		return err
	}
	for _, seg := range segs {
		if seg < cp.Seg {
			if err := os.Remove(filepath.Join(m.s.dir, segName(seg))); err != nil {
				m.log.Warn("spool: delete segment", slog.String("error", err.Error()))
			}
			m.s.forgetCut(seg)
		}
	}
	durable, _ := m.s.positions()
	if cp == durable {
		// Caught up: start a new segment so this one can go next time.
		m.s.rotateIfAtLeast(1 << 20)
	}
	return nil
}

func (m *Mover) mark(applied, cp Pos) *fsqueue.Mark {
	v := make([]byte, 32)
	binary.BigEndian.PutUint64(v[0:], applied.Seg)
	binary.BigEndian.PutUint64(v[8:], uint64(applied.Off))
	binary.BigEndian.PutUint64(v[16:], cp.Seg)
	binary.BigEndian.PutUint64(v[24:], uint64(cp.Off))
	return &fsqueue.Mark{Key: markKey, Value: v}
}
