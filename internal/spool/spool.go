// Package spool is the one-machine gateway's write-ahead log. A message's
// raw bytes, its envelope and its job are appended to one log file, and the
// gateway answers 250 once an fdatasync of that file has covered them. The
// flush is shared (group commit): every session whose bytes were written
// before a flush started is served by it, so many sessions pay for one
// flush instead of each paying for several (file, directories, queue).
//
// A mover then copies each committed message into the store and its job
// into the queue, off the path to 250, and records in the queue file how far
// it got. At start-up the log is read again from that point, so a crash of
// the process or the machine at any moment loses nothing that was
// acknowledged. Segments the store and queue hold durably are deleted.
package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/postern/postern/internal/atomicfile"
)

// Options tune a Spool. The zero value is the default.
type Options struct {
	// SegmentBytes is the size after which writes go to a new segment
	// file. Default 32 MiB.
	SegmentBytes int64
	// ChunkBytes is how much of a message a session buffers before it
	// appends a chunk frame. Default 64 KiB; at most 4 MiB (a frame).
	ChunkBytes int
	// CheckpointEvery is how often the mover makes what it moved durable
	// and deletes segments it no longer needs. Default 10s.
	CheckpointEvery time.Duration
	// QuarantineDir takes commits the mover cannot decode (see Mover).
	// Default: "quarantine" beside the log's directory.
	QuarantineDir string
	Logger        *slog.Logger
	// Complete, when set, finishes each commit's envelope and job once the
	// mover has read the whole message: digest gives the SHA-256 of its
	// bytes (read from the log, so the writer need not hash a message
	// before it is acknowledged). It returns the envelope and job to store
	// and queue; an error quarantines the commit as one that cannot be
	// decoded. A writer learns from Completes that the mover will call it.
	Complete func(envelope, job []byte, digest func() []byte) (envelope2, job2 []byte, err error)
	// sync replaces fdatasync in tests, writeAt the file's WriteAt, and
	// now the clock of the backlog and the stall alarm.
	sync    func(*os.File) error
	writeAt func(f *os.File, b []byte, off int64) (int, error)
	now     func() time.Time
}

// Completes reports whether the mover finishes commits (Options.Complete).
func (s *Spool) Completes() bool { return s.opts.Complete != nil }

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("spool: closed")

// errFlushFailed fails messages whose bytes a failed flush may have lost.
var errFlushFailed = errors.New("spool: an earlier flush of the log failed")

// Pos is a place in the log: a segment and a byte offset in it.
type Pos struct {
	Seg uint64
	Off int64
}

// Less orders positions.
func (p Pos) Less(q Pos) bool { return p.Seg < q.Seg || p.Seg == q.Seg && p.Off < q.Off }

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Seg, p.Off) }

// Spool is a log open for writing. One process at a time may use a
// directory; the queue file's lock already ensures that in the gateway.
type Spool struct {
	dir  string
	opts Options
	log  *slog.Logger
	bufs sync.Pool // *[]byte of headerLen+ChunkBytes+room for a commit

	mu       sync.Mutex
	f        *os.File
	seg      uint64           // current segment
	firstNew uint64           // first segment this process wrote; earlier ones are replayed
	off      int64            // logical end of the current segment
	durable  Pos              // everything before is on disk
	reached  Pos              // flushed, but an earlier segment's last flush may still run
	rounds   []*round         // flushes in progress
	users    map[*os.File]int // flushes and writes in progress per file; a sealed file closes at 0
	// writing holds the start of every write in progress: frames are
	// written outside the lock, at offsets reserved under it, and a flush
	// covers only what lies before the first one still being written.
	writing []Pos
	// sealing holds segments rotated away from whose last flush waits for
	// their writes in progress to end.
	sealing []sealingSeg
	wake    chan struct{} // closed and replaced when a flush or the earliest write ends
	gen     uint64        // bumped by a failed flush
	// sealed says the current segment was cut after a failed flush and
	// takes no more writes; the next write starts a new one first.
	sealed  bool
	closed  bool
	aborted map[string]Pos // message -> write position when it was abandoned
	// cut holds, for segments this process sealed, where their frames
	// end: past it lie only the bytes of writes that failed (or, after a
	// failed flush, that no flush covered). The mover reads no further.
	cut map[uint64]int64

	moved chan struct{} // tells the mover that durable advanced

	backlog backlog // acknowledged, not yet moved; its own lock
}

// sealingSeg is a full segment whose last flush has not started yet.
type sealingSeg struct {
	f   *os.File
	end Pos
}

// round is one fdatasync of the log: every frame written before it started
// (up to target) is on disk when it ends without error.
type round struct {
	f      *os.File
	target Pos
	gen    uint64 // a flush that fails after this one starts voids it
	done   chan struct{}
}

// Open opens the log in dir, creating dir if needed, and starts a new
// segment for this process's writes. Older segments are left for the
// mover to replay (see Mover).
func Open(dir string, opts Options) (*Spool, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 32 << 20
	}
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = 64 << 10
	}
	opts.ChunkBytes = min(opts.ChunkBytes, maxPayload)
	if opts.QuarantineDir == "" {
		opts.QuarantineDir = filepath.Join(filepath.Dir(filepath.Clean(dir)), "quarantine")
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.sync == nil {
		opts.sync = fdatasync
	}
	if opts.writeAt == nil {
		opts.writeAt = (*os.File).WriteAt
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	next := uint64(1)
	if len(segs) > 0 {
		next = segs[len(segs)-1] + 1
	}
	s := &Spool{
		dir: dir, opts: opts, log: opts.Logger,
		aborted: map[string]Pos{}, cut: map[uint64]int64{}, users: map[*os.File]int{},
		moved:    make(chan struct{}, 1),
		wake:     make(chan struct{}),
		firstNew: next,
	}
	s.bufs.New = func() any { b := make([]byte, 0, headerLen+opts.ChunkBytes+4<<10); return &b }
	if err := s.openSegment(next); err != nil {
		return nil, err
	}
	s.durable, s.reached = Pos{Seg: next}, Pos{Seg: next}
	return s, nil
}

func segName(seg uint64) string { return fmt.Sprintf("%020d.log", seg) }

// listSegments returns the segment numbers in dir, in order.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var segs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, n)
	}
	slices.Sort(segs)
	return segs, nil
}

// openSegment creates segment seg and makes its directory entry durable.
// Called at Open and, with s.mu held, on rotation.
func (s *Spool) openSegment(seg uint64) error {
	f, err := os.OpenFile(filepath.Join(s.dir, segName(seg)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("spool: create segment: %w", err)
	}
	if err := atomicfile.SyncDir(s.dir); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("spool: %w", err)
	}
	s.f, s.seg, s.off = f, seg, 0
	return nil
}

// rotate seals the current segment and starts the next. Called with s.mu
// held. The sealed segment's last flush runs like any other, off the lock,
// so writes go on meanwhile; nothing in the new segment counts as durable
// before it ends (see advanceLocked). If the new file cannot be made (a
// full disk), writes go on in this segment.
func (s *Spool) rotate() error {
	old, end := s.f, Pos{Seg: s.seg, Off: s.off}
	s.cut[end.Seg] = end.Off
	s.users[old]++ // held by the sealing entry
	if err := s.switchSegment(); err != nil {
		s.users[old]--
		delete(s.cut, end.Seg)
		return err
	}
	s.sealing = append(s.sealing, sealingSeg{f: old, end: end})
	s.startSealingRounds()
	return nil
}

// startSealingRounds starts the last flush of each full segment whose
// writes have all ended.
func (s *Spool) startSealingRounds() {
	s.sealing = slices.DeleteFunc(s.sealing, func(sg sealingSeg) bool {
		if slices.ContainsFunc(s.writing, func(w Pos) bool { return w.Seg == sg.end.Seg }) {
			return false
		}
		s.startRound(sg.f, sg.end)
		s.release(sg.f)
		return true
	})
}

// release drops one use of f, closing it if it is no longer the current
// segment and nothing uses it.
func (s *Spool) release(f *os.File) {
	s.users[f]--
	if s.users[f] == 0 {
		delete(s.users, f)
		if f != s.f {
			s.closeSealed(f)
		}
	}
}

// writtenEnd is where the current segment's first write in progress
// starts, or its end: everything before it is written.
func (s *Spool) writtenEnd() int64 {
	end := s.off
	for _, w := range s.writing {
		if w.Seg == s.seg && w.Off < end {
			end = w.Off
		}
	}
	return end
}

// broadcastLocked wakes every waiter to look again.
func (s *Spool) broadcastLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// failFlushLocked handles a failed flush. Linux may drop the pages a failed
// flush could not write and report success next time: nothing written after
// the last good flush can be trusted to be on disk. Every message that wrote
// any of it fails (gen), every segment is cut at what is durable, and new
// writes go to a new segment, now or, if the disk cannot take a new file
// yet, at the next write.
func (s *Spool) failFlushLocked(err error) {
	s.gen++
	s.log.Error("spool: flush failed; failing the messages it covered", slog.String("error", err.Error()))
	for seg := s.durable.Seg; seg <= s.seg; seg++ {
		off := int64(0)
		if seg == s.durable.Seg {
			off = s.durable.Off
		}
		if c, ok := s.cut[seg]; !ok || off < c {
			s.cut[seg] = off
		}
	}
	for _, sg := range s.sealing {
		s.release(sg.f) // cut above: its last flush would vouch for nothing
	}
	s.sealing = nil
	s.sealed = true
	if err := s.unseal(); err != nil {
		s.log.Warn("spool: cannot start a new segment yet; refusing mail until one can be made", slog.String("error", err.Error()))
	}
}

// unseal starts the segment that follows a failed flush; it is durable from
// its start, as nothing before it is read past the cuts.
func (s *Spool) unseal() error {
	if err := s.switchSegment(); err != nil {
		return err
	}
	s.sealed = false
	s.durable, s.reached = Pos{Seg: s.seg}, Pos{Seg: s.seg}
	return nil
}

func (s *Spool) switchSegment() error {
	old := s.f
	if err := s.openSegment(s.seg + 1); err != nil {
		return err
	}
	if s.users[old] == 0 {
		s.closeSealed(old)
	}
	s.notifyMover()
	return nil
}

// rotateIfAtLeast starts a new segment if the current one holds at least n
// bytes, so that a quiet log's old data can be deleted. The mover calls it
// after a checkpoint that reached the end of the log.
func (s *Spool) rotateIfAtLeast(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.sealed || s.off < n || s.durable != (Pos{Seg: s.seg, Off: s.off}) {
		return
	}
	if err := s.rotate(); err != nil {
		s.log.Error("spool: rotate segment", slog.String("error", err.Error()))
	}
}

// append writes one or more whole frames for message id. It returns the
// position after them. The write itself runs outside the lock, at an offset
// reserved under it, so sessions copy their bytes into the log in parallel.
func (s *Spool) append(frames []byte, gen *uint64, started *bool) (Pos, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Pos{}, ErrClosed
	}
	if !*started {
		*started, *gen = true, s.gen
	} else if *gen != s.gen {
		s.mu.Unlock()
		return Pos{}, errFlushFailed
	}
	if s.sealed {
		if err := s.unseal(); err != nil {
			s.mu.Unlock()
			return Pos{}, fmt.Errorf("spool: start a new segment: %w", err)
		}
	}
	if s.off >= s.opts.SegmentBytes {
		if err := s.rotate(); err != nil {
			s.log.Warn("spool: cannot start a new segment; writing on in this one", slog.String("error", err.Error()))
		}
	}
	f, at := s.f, Pos{Seg: s.seg, Off: s.off}
	end := Pos{Seg: at.Seg, Off: at.Off + int64(len(frames))}
	s.off = end.Off
	s.writing = append(s.writing, at)
	s.users[f]++
	s.mu.Unlock()

	_, err := s.opts.writeAt(f, frames, at.Off)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.writing = slices.DeleteFunc(s.writing, func(w Pos) bool { return w == at })
	// Waiters on s.wake need the written part of a segment to grow (or a
	// segment's last write to end), which only the earliest write in
	// progress can do; waking them for every other write is wasted work.
	if err != nil || !slices.ContainsFunc(s.writing, func(w Pos) bool { return w.Seg == at.Seg && w.Off < at.Off }) {
		defer s.broadcastLocked()
	}
	if err != nil {
		if at.Seg == s.seg && s.off == end.Off && !s.sealed {
			// The last write: the next frame overwrites what it left.
			s.off = at.Off
		} else if !s.closed && *gen == s.gen {
			// Frames after these were reserved: a reader would stop at
			// the broken one, so they all fail.
			s.failFlushLocked(err)
		}
		s.release(f)
		return Pos{}, fmt.Errorf("spool: write: %w", err)
	}
	s.release(f)
	s.startSealingRounds()
	return end, nil
}

// maxRounds bounds the flushes in progress at once. A writer that no running
// flush covers starts its own at once instead of waiting for the running one
// to end and then paying a whole flush more; but each flush in progress
// splits the batch. Measured on ext4 (BENCHMARKS.md): 2 gives the most at 10
// sessions (about 10% over 4, a third over 1); at 50 sessions one flush at a
// time batches best and 2 sits between, with the tail within 2x either way.
const maxRounds = 2

// waitDurable returns once everything before end is on disk, sharing
// flushes with concurrent writers. If ctx ends first, the message is
// abandoned: the mover will skip it, and the caller reports failure (it is
// not acknowledged).
func (s *Spool) waitDurable(ctx context.Context, id string, end Pos, gen uint64) error {
	s.mu.Lock()
	for {
		if s.gen != gen {
			s.abandonLocked(id)
			s.mu.Unlock()
			return errFlushFailed
		}
		if !s.durable.Less(end) {
			s.mu.Unlock()
			return nil
		}
		wait := s.wake // something changes: a flush or the earliest write ends
		var cover *round
		for _, r := range s.rounds {
			if !r.target.Less(end) {
				cover = r
				break
			}
		}
		switch {
		case cover != nil:
			wait = cover.done
		case end.Seg == s.seg && s.writtenEnd() >= end.Off && s.reached.Less(end) && len(s.rounds) < maxRounds:
			wait = s.startRoundLocked().done
		default:
			// An earlier write or segment is still in progress, or every
			// flush slot is taken.
		}
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			s.mu.Lock()
			if !s.durable.Less(end) && s.gen == gen {
				s.mu.Unlock()
				return nil
			}
			s.abandonLocked(id)
			s.mu.Unlock()
			return ctx.Err()
		}
		s.mu.Lock()
	}
}

// startRoundLocked starts a flush of everything written so far. It runs on
// its own goroutine so that a waiter can give up on a stalled disk.
func (s *Spool) startRoundLocked() *round {
	return s.startRound(s.f, Pos{Seg: s.seg, Off: s.writtenEnd()})
}

func (s *Spool) startRound(f *os.File, target Pos) *round {
	r := &round{f: f, target: target, gen: s.gen, done: make(chan struct{})}
	s.rounds = append(s.rounds, r)
	s.users[r.f]++
	go s.flush(r)
	return r
}

func (s *Spool) flush(r *round) {
	err := s.opts.sync(r.f)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.rounds = slices.DeleteFunc(s.rounds, func(x *round) bool { return x == r })
	s.release(r.f)
	defer s.broadcastLocked()
	switch {
	case r.gen != s.gen:
		// A flush failed since this one began: past the cuts, its frames
		// belong to failed messages.
	case err == nil:
		if s.reached.Less(r.target) {
			s.reached = r.target
		}
		s.advanceLocked()
	case !s.closed:
		s.failFlushLocked(err)
	}
	close(r.done)
}

// advanceLocked makes what flushes reached durable, unless the last flush
// of an earlier segment is still running: the log is durable in order.
func (s *Spool) advanceLocked() {
	for _, r := range s.rounds {
		if r.gen == s.gen && r.target.Seg < s.reached.Seg {
			return
		}
	}
	for _, sg := range s.sealing {
		if sg.end.Seg < s.reached.Seg {
			return
		}
	}
	if s.durable.Less(s.reached) {
		s.durable = s.reached
		s.notifyMover()
	}
}

// closeSealed closes a segment file no flush uses any more.
func (s *Spool) closeSealed(f *os.File) {
	if err := f.Close(); err != nil {
		s.log.Warn("spool: close sealed segment", slog.String("error", err.Error()))
	}
}

// abandon tells the mover to skip message id: it will not be committed, or
// its commit was not acknowledged.
func (s *Spool) abandon(id string) {
	s.mu.Lock()
	s.abandonLocked(id)
	s.mu.Unlock()
}

func (s *Spool) abandonLocked(id string) {
	// All of id's frames are before the current end.
	s.aborted[id] = Pos{Seg: s.seg, Off: s.off}
}

// isAborted reports whether the mover must skip id.
func (s *Spool) isAborted(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.aborted[id]
	return ok
}

// abortedIDs returns the abandoned messages.
func (s *Spool) abortedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.aborted))
}

// forgetAborted drops abandoned messages whose frames all lie before cp:
// the mover never reads them again.
func (s *Spool) forgetAborted(cp Pos) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, at := range s.aborted {
		if !cp.Less(at) {
			delete(s.aborted, id)
		}
	}
}

func (s *Spool) notifyMover() {
	select {
	case s.moved <- struct{}{}:
	default:
	}
}

// cutAt returns where a sealed segment's readable part ends, or -1 for
// wherever its frames end.
func (s *Spool) cutAt(seg uint64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off, ok := s.cut[seg]; ok {
		return off
	}
	return -1
}

// forgetCut drops a sealed segment's end once the mover is past it.
func (s *Spool) forgetCut(seg uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cut, seg)
}

// positions returns the durable end and the first segment of this process.
func (s *Spool) positions() (durable Pos, firstNew uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.durable, s.firstNew
}

// Err reports why the log cannot take mail, or nil.
func (s *Spool) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.sealed {
		return errors.New("spool: a flush failed and no new segment could be started yet")
	}
	return nil
}

// Close flushes and closes the log. Writes must have ended; the mover must
// be stopped first if one runs.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for len(s.rounds) > 0 || len(s.writing) > 0 || len(s.sealing) > 0 {
		s.startSealingRounds()
		ch := s.wake
		s.mu.Unlock()
		<-ch
		s.mu.Lock()
	}
	var err error
	if !s.sealed {
		err = s.opts.sync(s.f)
	}
	err = errors.Join(err, s.f.Close())
	s.f = nil
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("spool: close: %w", err)
	}
	return nil
}
