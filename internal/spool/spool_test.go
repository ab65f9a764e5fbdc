package spool

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue/fsqueue"
)

// rig is a spool with a real store and queue file behind it.
type rig struct {
	dir   string
	sp    *Spool
	mv    *Mover
	store *fsblob.Store
	db    *fsqueue.DB
	q     *fsqueue.Queue
	put   Store // what the mover writes through
}

func openRig(t *testing.T, dir string, opts Options, wrap func(Store) Store) *rig {
	t.Helper()
	r := &rig{dir: dir}
	var err error
	if r.store, err = fsblob.New(filepath.Join(dir, "store"), fsblob.Options{}); err != nil {
		t.Fatal(err)
	}
	if r.db, err = fsqueue.Open(filepath.Join(dir, "queue.db"), fsqueue.Options{}); err != nil {
		t.Fatal(err)
	}
	if r.q, err = r.db.Queue("inbound", fsqueue.Config{}); err != nil {
		t.Fatal(err)
	}
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = 20 * time.Millisecond
	}
	if opts.Complete == nil {
		opts.Complete = addDigest
	}
	if r.sp, err = Open(filepath.Join(dir, "spool"), opts); err != nil {
		t.Fatal(err)
	}
	r.put = r.store
	if wrap != nil {
		r.put = wrap(r.store)
	}
	r.mv = NewMover(r.sp, r.put, r.q, r.db)
	return r
}

func (r *rig) start(t *testing.T) {
	t.Helper()
	if err := r.mv.Replay(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.mv.Start()
}

// stop shuts down cleanly.
func (r *rig) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.mv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	r.closeFiles(t)
}

// crash drops the process's state without moving or checkpointing: the
// mover is never started or is abandoned, files stay as they are.
func (r *rig) closeFiles(t *testing.T) {
	t.Helper()
	if err := r.sp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.db.Close(); err != nil {
		t.Fatal(err)
	}
	r.store.Close()
}

// addDigest completes write's commits as ingest's CompleteEnvelope does
// the gateway's: the digest goes into the envelope and the job.
func addDigest(envelope, job []byte, digest func() []byte) ([]byte, []byte, error) {
	var env, jb map[string]string
	if json.Unmarshal(envelope, &env) != nil || json.Unmarshal(job, &jb) != nil {
		return envelope, job, nil // a test's opaque bytes
	}
	if env["fail"] != "" {
		return nil, nil, errors.New(env["fail"])
	}
	env["sha256"] = hex.EncodeToString(digest())
	jb["sha256"] = env["sha256"]
	eb, _ := json.Marshal(env)
	jbb, _ := json.Marshal(jb)
	return eb, jbb, nil
}

type sent struct {
	id  string
	raw []byte
}

// write commits one message of size n.
// viaReadFrom sends every other message through Msg.ReadFrom instead of Write.
var viaReadFrom atomic.Int32

func write(t *testing.T, sp *Spool, n int) (sent, error) {
	t.Helper()
	id := string(postern.NewMsgID())
	raw := make([]byte, n)
	rand.Read(raw)
	m, err := sp.Begin(id)
	if err != nil {
		t.Fatal(err)
	}
	if viaReadFrom.Add(1)%2 == 0 {
		// As ingest does: io.Copy into the message, short reads.
		if _, err := io.Copy(m, iotest.HalfReader(bytes.NewReader(raw))); err != nil {
			m.Abort()
			return sent{}, err
		}
	} else {
		// Uneven writes, as a network reader gives.
		for p := raw; len(p) > 0; {
			k := min(len(p), 1+len(p)/3, 20000)
			if _, err := m.Write(p[:k]); err != nil {
				m.Abort()
				return sent{}, err
			}
			p = p[k:]
		}
	}
	env, _ := json.Marshal(map[string]string{"id": id})
	job, _ := json.Marshal(map[string]string{"job": id})
	if err := m.Commit(context.Background(), env, job); err != nil {
		return sent{}, err
	}
	return sent{id: id, raw: raw}, nil
}

// writeMany commits n messages with sizes from size(i).
// writeConcurrently commits perSession messages from each of sessions
// goroutines; size gives the size of session c's i-th message.
func writeConcurrently(t *testing.T, sp *Spool, sessions, perSession int, size func(c, i int) int) []sent {
	t.Helper()
	var mu sync.Mutex
	var msgs []sent
	var wg sync.WaitGroup
	for c := range sessions {
		wg.Go(func() {
			for i := range perSession {
				m, err := write(t, sp, size(c, i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				msgs = append(msgs, m)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return msgs
}

func writeMany(t *testing.T, sp *Spool, n int, size func(i int) int) []sent {
	t.Helper()
	var msgs []sent
	for i := range n {
		m, err := write(t, sp, size(i))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func cycled(i int) int { return sizes[i%len(sizes)] }

// reopenAndCheck starts a new process's spool on dir and checks that
// replay moves exactly msgs.
func reopenAndCheck(t *testing.T, dir string, msgs []sent) {
	t.Helper()
	r := openRig(t, dir, Options{}, nil)
	r.start(t)
	checkMoved(t, r.store, drain(t, r.q), msgs)
	r.stop(t)
}

// settle waits for want jobs and a little longer, and returns all queued.
func settle(t *testing.T, q *fsqueue.Queue, want int) map[string]int {
	t.Helper()
	jobs := waitJobs(t, q, want)
	time.Sleep(100 * time.Millisecond)
	for id := range drain(t, q) {
		jobs[id]++
	}
	return jobs
}

// drain receives every job in the queue.
func drain(t *testing.T, q *fsqueue.Queue) map[string]int {
	t.Helper()
	got := map[string]int{}
	for {
		msgs, err := q.Receive(context.Background(), 100, time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return got
		}
		for _, m := range msgs {
			var j struct{ Job string }
			if err := json.Unmarshal(m.Body, &j); err != nil {
				t.Fatalf("job %q: %v", m.Body, err)
			}
			got[j.Job]++
		}
	}
}

// waitJobs waits until the queue holds n jobs and returns them.
func waitJobs(t *testing.T, q *fsqueue.Queue, n int) map[string]int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := q.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Visible >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs queued, want %d", st.Visible, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return drain(t, q)
}

func checkMoved(t *testing.T, store *fsblob.Store, jobs map[string]int, msgs []sent) {
	t.Helper()
	if len(jobs) != len(msgs) {
		t.Fatalf("%d distinct jobs, want %d", len(jobs), len(msgs))
	}
	for _, m := range msgs {
		if jobs[m.id] != 1 {
			t.Fatalf("message %s: %d jobs, want 1", m.id, jobs[m.id])
		}
		rc, err := store.Get(context.Background(), postern.MsgID(m.id).RawKey())
		if err != nil {
			t.Fatalf("message %s: %v", m.id, err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(b, m.raw) {
			t.Fatalf("message %s: stored %d bytes differ from the %d sent", m.id, len(b), len(m.raw))
		}
		rc, err = store.Get(context.Background(), postern.MsgID(m.id).EnvelopeKey())
		if err != nil {
			t.Fatalf("envelope %s: %v", m.id, err)
		}
		b, _ = io.ReadAll(rc)
		rc.Close()
		var env map[string]string
		if err := json.Unmarshal(b, &env); err != nil || env["id"] != m.id {
			t.Fatalf("envelope %s: %s", m.id, b)
		}
		if sum := sha256.Sum256(m.raw); env["sha256"] != hex.EncodeToString(sum[:]) {
			t.Fatalf("envelope %s: digest %q, want the %d bytes' %x", m.id, env["sha256"], len(m.raw), sum)
		}
	}
}

var sizes = []int{0, 1, 700, 10 << 10, 64<<10 - headerLen, 64 << 10, 100 << 10, 300 << 10, 1 << 20}

// Concurrent sessions' frames interleave in the log; each message must come
// out whole, once, with its job queued once.
func TestConcurrentMessagesMoveWholeAndOnce(t *testing.T) {
	t.Parallel()
	r := openRig(t, t.TempDir(), Options{SegmentBytes: 1 << 20}, nil)
	r.start(t)
	msgs := writeConcurrently(t, r.sp, 8, 12, func(c, i int) int { return sizes[(c+i)%len(sizes)] })
	jobs := waitJobs(t, r.q, len(msgs))
	checkMoved(t, r.store, jobs, msgs)
	r.stop(t)
	// Small segments rotated and the moved ones were deleted.
	segs, _ := listSegments(filepath.Join(r.dir, "spool"))
	if len(segs) > 2 {
		t.Fatalf("%d segments left after everything was moved: %v", len(segs), segs)
	}
}

// A crash before the mover ran: the next start replays the log.
func TestReplayAfterCrashBeforeMove(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := openRig(t, dir, Options{}, nil)
	msgs := writeMany(t, r.sp, 20, cycled)
	// A message whose session died mid-upload: never acknowledged.
	m, _ := r.sp.Begin(string(postern.NewMsgID()))
	m.Write(bytes.Repeat([]byte("x"), 200<<10))
	r.closeFiles(t) // no mover ran
	reopenAndCheck(t, dir, msgs)
}

// A message that began in one segment and went on in the next (the log
// rotated between its chunks), replayed by a new process: it moves whole,
// not from the chunk the second segment starts with.
func TestReplayOfMessagesAcrossSegments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := openRig(t, dir, Options{SegmentBytes: 100 << 10, ChunkBytes: 16 << 10}, nil)
	msgs := writeMany(t, r.sp, 12, func(i int) int { return 70<<10 + i*1000 })
	r.closeFiles(t) // no mover ran
	if segs, err := listSegments(filepath.Join(dir, "spool")); err != nil || len(segs) < 4 {
		t.Fatalf("%d segments (%v): the messages do not span rotations", len(segs), err)
	}
	reopenAndCheck(t, dir, msgs)
}

// A checkpoint taken while one message is open, just after another that
// began before it was committed: a rewind to that checkpoint (here a
// failed put of the open message) must not meet the committed message's
// commit without its first chunk and put what follows in its place.
func TestRewindDoesNotCutAMessageThatBeganBeforeTheCheckpoint(t *testing.T) {
	t.Parallel()
	ss := &keyFailStore{}
	r := openRig(t, t.TempDir(), Options{ChunkBytes: 16 << 10, CheckpointEvery: 10 * time.Millisecond},
		func(s Store) Store { ss.Store = s; return ss })
	r.start(t)
	part := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	commit := func(m *Msg, id string) {
		t.Helper()
		env, _ := json.Marshal(map[string]string{"id": id})
		if err := m.Commit(context.Background(), env, []byte(`{"job":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	x, y := string(postern.NewMsgID()), string(postern.NewMsgID())
	ss.failKey.Store(postern.MsgID(y).RawKey())
	mx, _ := r.sp.Begin(x)
	my, _ := r.sp.Begin(y)
	xRaw, yRaw := append(part(16<<10), part(5000)...), append(part(16<<10), part(3000)...)
	mx.Write(xRaw[:16<<10]) // x's first chunk
	my.Write(yRaw[:16<<10]) // y's first chunk, after it
	mx.Write(xRaw[16<<10:])
	commit(mx, x)
	waitJobs(t, r.q, 1)
	time.Sleep(50 * time.Millisecond) // a checkpoint or more, y still open
	my.Write(yRaw[16<<10:])
	commit(my, y) // its first put fails: the mover rewinds
	jobs := waitJobs(t, r.q, 1)
	if ss.failures.Load() == 0 {
		t.Fatal("the put of y never failed: nothing was rewound")
	}
	r.stop(t)
	checkMoved(t, r.store, map[string]int{x: 1, y: jobs[y]}, []sent{{id: x, raw: xRaw}, {id: y, raw: yRaw}})
}

// keyFailStore fails the first put of one key.
type keyFailStore struct {
	Store
	failKey  atomic.Value
	failures atomic.Int32
}

func (s *keyFailStore) failed(key string, r io.Reader) bool {
	if key != s.failKey.Load() || !s.failures.CompareAndSwap(0, 1) {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(r, 100))
	return true
}

func (s *keyFailStore) PutUnsynced(ctx context.Context, key string, r io.Reader) error {
	if s.failed(key, r) {
		return errors.New("injected: no space left on device")
	}
	return s.Store.PutUnsynced(ctx, key, r)
}

func (s *keyFailStore) CreateUnsynced(ctx context.Context, key string, r io.Reader) error {
	if s.failed(key, r) {
		return errors.New("injected: no space left on device")
	}
	return s.Store.CreateUnsynced(ctx, key, r)
}

// A crash after the jobs were queued but before the store was synced: the
// objects may be gone, the jobs are not. Replay puts the objects again and
// queues no job twice.
func TestReplayAfterCrashBeforeCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := openRig(t, dir, Options{CheckpointEvery: time.Hour}, nil)
	r.start(t)
	msgs := writeMany(t, r.sp, 15, cycled)
	first := waitJobs(t, r.q, len(msgs))
	// Crash: the mover stops dead (no final checkpoint) and the unsynced
	// objects are lost.
	close(r.mv.halt)
	<-r.mv.stopped
	r.closeFiles(t)
	if err := os.RemoveAll(filepath.Join(dir, "store", "objects", "m")); err != nil {
		t.Fatal(err)
	}
	r2 := openRig(t, dir, Options{}, nil)
	r2.start(t)
	if again := drain(t, r2.q); len(again) != 0 {
		t.Fatalf("replay queued %d jobs again", len(again))
	}
	checkMoved(t, r2.store, first, msgs)
	r2.stop(t)
}

// The last segment of a process that died may end in a torn frame: what is
// before it is replayed, the torn part ignored.
func TestTornTailIsIgnored(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := openRig(t, dir, Options{}, nil)
	msgs := writeMany(t, r.sp, 5, func(i int) int { return 1000 * (i + 1) })
	seg := filepath.Join(dir, "spool", segName(r.sp.seg))
	r.closeFiles(t)
	// A commit frame cut short, as a crash mid-write leaves it.
	tail := appendFrame(nil, frameCommit, string(postern.NewMsgID()), commitPayload(nil, []byte(`{}`), []byte(`{"job":"torn"}`)))
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(tail[:len(tail)-3])
	f.Close()
	reopenAndCheck(t, dir, msgs)
}

// An aborted message, and one whose commit was not acknowledged because
// its caller gave up waiting, are never moved.
func TestAbandonedMessagesAreNotMoved(t *testing.T) {
	t.Parallel()
	var stall atomic.Bool
	release := make(chan struct{})
	opts := Options{sync: func(f *os.File) error {
		if stall.Load() {
			<-release // a flush that takes long
		}
		return fdatasync(f)
	}}
	r := openRig(t, t.TempDir(), opts, nil)
	r.start(t)
	good, err := write(t, r.sp, 5000)
	if err != nil {
		t.Fatal(err)
	}
	// Aborted after chunks reached the log.
	m, _ := r.sp.Begin(string(postern.NewMsgID()))
	m.Write(bytes.Repeat([]byte("a"), 150<<10))
	m.Abort()
	// Gives up while the flush covering its commit is stuck.
	stall.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	m2, _ := r.sp.Begin(string(postern.NewMsgID()))
	m2.Write([]byte("late"))
	if err := m2.Commit(ctx, []byte(`{}`), []byte(`{"job":"late"}`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("commit behind a stuck flush: %v, want DeadlineExceeded", err)
	}
	stall.Store(false)
	close(release)
	after, err := write(t, r.sp, 100)
	if err != nil {
		t.Fatal(err)
	}
	jobs := settle(t, r.q, 2)
	if _, ok := jobs["late"]; ok {
		t.Fatalf("a commit that was not acknowledged was moved: %v", jobs)
	}
	checkMoved(t, r.store, jobs, []sent{good, after})
	r.stop(t)
	// Nothing open is left pinning the log.
	if len(r.mv.open) != 0 {
		t.Fatalf("%d messages still open", len(r.mv.open))
	}
}

// A failed flush fails the messages it covered, and mail after it flows.
func TestFailedFlushFailsItsMessages(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	opts := Options{sync: func(f *os.File) error {
		if fail.Swap(false) {
			return errors.New("injected: EIO")
		}
		return fdatasync(f)
	}}
	r := openRig(t, t.TempDir(), opts, nil)
	r.start(t)
	before, err := write(t, r.sp, 3000)
	if err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	if _, err := write(t, r.sp, 3000); !errors.Is(err, errFlushFailed) {
		t.Fatalf("commit over a failed flush: %v, want errFlushFailed", err)
	}
	after, err := write(t, r.sp, 3000)
	if err != nil {
		t.Fatal(err)
	}
	checkMoved(t, r.store, settle(t, r.q, 2), []sent{before, after})
	r.stop(t)
}

// failingStore fails its first n puts, then works: the mover must start
// over from its checkpoint and still queue each job once.
type failingStore struct {
	Store
	n atomic.Int32
}

func (f *failingStore) fail(r io.Reader) bool {
	if f.n.Add(-1) >= 0 {
		io.Copy(io.Discard, io.LimitReader(r, 100))
		return true
	}
	return false
}

func (f *failingStore) PutUnsynced(ctx context.Context, key string, r io.Reader) error {
	if f.fail(r) {
		return fmt.Errorf("injected: no space left on device")
	}
	return f.Store.PutUnsynced(ctx, key, r)
}

func (f *failingStore) CreateUnsynced(ctx context.Context, key string, r io.Reader) error {
	if f.fail(r) {
		return fmt.Errorf("injected: no space left on device")
	}
	return f.Store.CreateUnsynced(ctx, key, r)
}

func TestMoverRetriesAfterStoreErrors(t *testing.T) {
	t.Parallel()
	fs := &failingStore{}
	fs.n.Store(7)
	r := openRig(t, t.TempDir(), Options{}, func(s Store) Store { fs.Store = s; return fs })
	r.start(t)
	msgs := writeMany(t, r.sp, 30, cycled)
	checkMoved(t, r.store, waitJobs(t, r.q, len(msgs)), msgs)
	r.stop(t)
}

// Many sessions waiting at once share flushes.
func TestConcurrentCommitsShareFlushes(t *testing.T) {
	t.Parallel()
	var syncs atomic.Int32
	opts := Options{sync: func(f *os.File) error {
		syncs.Add(1)
		time.Sleep(5 * time.Millisecond) // a disk slow enough for company
		return fdatasync(f)
	}}
	r := openRig(t, t.TempDir(), opts, nil)
	r.start(t)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for range 5 {
				if _, err := write(t, r.sp, 2000); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n := syncs.Load(); n > 60 || n < 1 {
		t.Fatalf("%d flushes for 100 messages from 20 sessions; want them shared", n)
	} else {
		t.Logf("%d flushes for 100 messages", n)
	}
	waitJobs(t, r.q, 100)
	r.stop(t)
}

func FuzzFrameReader(f *testing.F) {
	f.Add(appendFrame(nil, frameChunk, string(postern.NewMsgID()), []byte("hello")))
	f.Add(appendFrame(appendFrame(nil, frameChunk, string(postern.NewMsgID()), nil), frameCommit, string(postern.NewMsgID()), commitPayload(nil, []byte("{}"), []byte("{}"))))
	f.Add([]byte{0, 0, 0, 5, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := frameReader{r: bufioReader(b)}
		var off int64
		for {
			x, err := fr.next()
			if err != nil {
				return
			}
			off += x.size
			if off > int64(len(b)) {
				t.Fatalf("frames of %d bytes from %d", off, len(b))
			}
			if x.typ == frameCommit {
				splitCommit(x.payload)
			}
		}
	})
}

// A segment's last flush runs off the lock: writes go on into the next
// segment meanwhile, and nothing there is acknowledged before it ends. If
// it fails, the messages it could have lost fail, and mail goes on after.
func TestRotationFlushDoesNotStopWrites(t *testing.T) {
	t.Parallel()
	for _, failIt := range []bool{false, true} {
		t.Run(fmt.Sprintf("fails=%v", failIt), func(t *testing.T) {
			t.Parallel()
			first := filepath.Join("spool", segName(1))
			var holdFirst atomic.Bool
			release := make(chan struct{})
			opts := Options{SegmentBytes: 4000, sync: func(f *os.File) error {
				if holdFirst.Load() && filepath.Base(f.Name()) == filepath.Base(first) {
					<-release
					if failIt {
						return errors.New("injected: EIO")
					}
				}
				return fdatasync(f)
			}}
			r := openRig(t, t.TempDir(), opts, nil)
			r.start(t)
			before, err := write(t, r.sp, 5000) // fills segment 1
			if err != nil {
				t.Fatal(err)
			}
			holdFirst.Store(true)
			type result struct {
				m   sent
				err error
			}
			done := make(chan result, 1)
			go func() {
				m, err := write(t, r.sp, 3000) // rotates, then lands in segment 2
				done <- result{m, err}
			}()
			// The write and its flush of segment 2 complete; the commit waits.
			deadline := time.Now().Add(10 * time.Second)
			for {
				r.sp.mu.Lock()
				seg, reached, durable := r.sp.seg, r.sp.reached, r.sp.durable
				r.sp.mu.Unlock()
				if seg == 2 && reached.Seg == 2 && reached.Off > 3000 {
					if durable.Seg != 1 {
						t.Fatalf("durable %v while segment 1's last flush runs", durable)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("writes into segment 2 did not go on: seg %d reached %v", seg, reached)
				}
				time.Sleep(time.Millisecond)
			}
			select {
			case res := <-done:
				t.Fatalf("acknowledged before segment 1 was flushed: %v", res.err)
			default:
			}
			close(release)
			res := <-done
			want := []sent{before}
			if failIt {
				if !errors.Is(res.err, errFlushFailed) {
					t.Fatalf("commit over a failed flush: %v, want errFlushFailed", res.err)
				}
			} else {
				if res.err != nil {
					t.Fatal(res.err)
				}
				want = append(want, res.m)
			}
			holdFirst.Store(false)
			after, err := write(t, r.sp, 3000)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, after)
			checkMoved(t, r.store, settle(t, r.q, len(want)), want)
			r.stop(t)
		})
	}
}

// A write that fails while later writes are in progress (their offsets
// reserved behind it) leaves a broken frame before theirs: every message in
// flight fails, and exactly the acknowledged ones are moved. After a crash
// that loses the process's memory of the failure, every acknowledged one is
// still moved once; a failed one whose frames were whole may be moved too
// (its client was told 451 and sends it again: a duplicate, never a loss).
func TestFailedWriteAmongConcurrentWrites(t *testing.T) {
	t.Parallel()
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			opts := Options{ChunkBytes: 4096, writeAt: func(f *os.File, b []byte, off int64) (int, error) {
				if n := calls.Add(1); n%97 == 0 {
					// Half a frame reaches the file, as a failing disk may leave it.
					f.WriteAt(b[:len(b)/2], off)
					return len(b) / 2, errors.New("injected: EIO")
				}
				time.Sleep(time.Duration(calls.Load()%3) * 100 * time.Microsecond) // let writes overlap
				return f.WriteAt(b, off)
			}}
			dir := t.TempDir()
			r := openRig(t, dir, opts, nil)
			if !crash {
				r.start(t)
			}
			var mu sync.Mutex
			var acked []sent
			var failed atomic.Int32
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for i := range 15 {
						m, err := write(t, r.sp, 2000+i*1500)
						if err != nil {
							failed.Add(1)
							continue
						}
						mu.Lock()
						acked = append(acked, m)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if failed.Load() == 0 || len(acked) == 0 {
				t.Fatalf("%d failed, %d acknowledged: the injection did not bite", failed.Load(), len(acked))
			}
			t.Logf("%d acknowledged, %d failed", len(acked), failed.Load())
			if crash {
				// Nothing moved yet; the process dies and a new one replays.
				r.closeFiles(t)
				r = openRig(t, dir, Options{}, nil)
				r.start(t)
			}
			jobs := settle(t, r.q, len(acked))
			if crash {
				extra := len(jobs) - len(acked)
				if extra < 0 || extra > int(failed.Load()) {
					t.Fatalf("%d jobs for %d acknowledged and %d failed", len(jobs), len(acked), failed.Load())
				}
				ackedJobs := map[string]int{}
				for _, m := range acked {
					ackedJobs[m.id] = jobs[m.id]
				}
				jobs = ackedJobs
			}
			checkMoved(t, r.store, jobs, acked)
			r.stop(t)
		})
	}
}

// batchSizes records the size of every batch the mover queues.
type batchSizes struct {
	Queue
	mu    sync.Mutex
	sizes []int
}

func (b *batchSizes) SendBatch(ctx context.Context, bodies [][]byte, mark *fsqueue.Mark) error {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(bodies))
	b.mu.Unlock()
	return b.Queue.SendBatch(ctx, bodies, mark)
}

// Catching up on a large backlog queues its jobs in bounded batches, each
// once.
func TestMoverQueuesBacklogInBoundedBatches(t *testing.T) {
	t.Parallel()
	opts := Options{sync: func(*os.File) error { return nil }} // durability is not what this tests
	r := openRig(t, t.TempDir(), opts, nil)
	rec := &batchSizes{Queue: r.q}
	r.mv = NewMover(r.sp, r.put, rec, r.db)
	msgs := writeConcurrently(t, r.sp, 10, (2*maxBatch+345)/10, func(int, int) int { return 100 })
	r.start(t) // the whole backlog is durable before the mover starts
	checkMoved(t, r.store, settle(t, r.q, len(msgs)), msgs)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.sizes) < 3 || slices.Max(rec.sizes) > maxBatch {
		t.Errorf("batches of %v jobs; want at most %d each", rec.sizes, maxBatch)
	}
	r.stop(t)
}
