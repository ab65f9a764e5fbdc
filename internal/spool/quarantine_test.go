package spool

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
)

// A commit larger than the reader takes is refused at write time: the
// message is not acknowledged, nothing of it is moved, and the mail after
// it is, also when a new process replays the log.
func TestOversizeCommitIsRefused(t *testing.T) {
	t.Parallel()
	for _, restart := range []bool{false, true} {
		t.Run(map[bool]string{false: "running", true: "replayed"}[restart], func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := openRig(t, dir, Options{}, nil)
			if !restart {
				r.start(t)
			}
			before, err := write(t, r.sp, 100<<10)
			if err != nil {
				t.Fatal(err)
			}
			id := string(postern.NewMsgID())
			m, err := r.sp.Begin(id)
			if err != nil {
				t.Fatal(err)
			}
			m.Write(bytes.Repeat([]byte("x"), 150<<10)) // chunk frames reach the log
			env := bytes.Repeat([]byte("r"), maxPayload/2)
			job := bytes.Repeat([]byte("j"), maxPayload/2)
			if err := m.Commit(context.Background(), env, job); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("commit of %d bytes: %v, want ErrTooLarge", len(env)+len(job), err)
			}
			// Just under the limit still fits.
			fits := bytes.Repeat([]byte("e"), maxPayload-4-len(`{"job":"x"}`))
			m2, _ := r.sp.Begin(string(postern.NewMsgID()))
			if err := m2.Commit(context.Background(), fits, []byte(`{"job":"x"}`)); err != nil {
				t.Fatalf("commit of exactly the largest frame: %v", err)
			}
			after, err := write(t, r.sp, 5000)
			if err != nil {
				t.Fatal(err)
			}
			if restart {
				r.closeFiles(t)
				r = openRig(t, dir, Options{}, nil)
				r.start(t)
			}
			jobs := settle(t, r.q, 3)
			delete(jobs, "x")
			checkMoved(t, r.store, jobs, []sent{before, after})
			if _, err := r.store.Stat(context.Background(), postern.MsgID(id).RawKey()); err == nil {
				t.Errorf("the refused message's raw bytes were moved")
			}
			r.stop(t)
		})
	}
}

// appendRaw puts hand-made frames into the log and waits until they are
// durable, as Commit does.
func appendRaw(t *testing.T, sp *Spool, id string, frames []byte) {
	t.Helper()
	var gen uint64
	var started bool
	end, err := sp.append(frames, &gen, &started)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.waitDurable(context.Background(), id, end, gen); err != nil {
		t.Fatal(err)
	}
}

// A commit the mover cannot decode is quarantined whole, counted and
// logged, and the mover goes on with the next message: while running, and
// when a new process replays the log.
func TestMalformedCommitIsQuarantined(t *testing.T) {
	t.Parallel()
	for _, restart := range []bool{false, true} {
		t.Run(map[bool]string{false: "running", true: "replayed"}[restart], func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := openRig(t, dir, Options{}, nil)
			if !restart {
				r.start(t)
			}
			before, err := write(t, r.sp, 3000)
			if err != nil {
				t.Fatal(err)
			}
			// A message whose commit says its envelope is longer than the
			// frame: whole and checksummed, but undecodable.
			bad := string(postern.NewMsgID())
			raw := bytes.Repeat([]byte("q"), 2000)
			commit := appendFrame(nil, frameCommit, bad, []byte{0xff, 0xff, 0xff, 0xff, '{', '}'})
			appendRaw(t, r.sp, bad, append(appendFrame(nil, frameChunk, bad, raw), commit...))
			// A frame with no message id: no writer of this log made it.
			garbage := appendFrame(nil, frameChunk, strings.Repeat("!", idLen), []byte("stray"))
			appendRaw(t, r.sp, "", garbage)
			after, err := write(t, r.sp, 300<<10)
			if err != nil {
				t.Fatal(err)
			}
			if restart {
				r.closeFiles(t)
				r = openRig(t, dir, Options{}, nil)
				r.start(t)
			}
			checkMoved(t, r.store, settle(t, r.q, 2), []sent{before, after})

			qdir := filepath.Join(dir, "quarantine")
			got, err := os.ReadFile(filepath.Join(qdir, bad+".commit"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, commit) {
				t.Errorf("quarantined %q, want the commit frame %q", got, commit)
			}
			ents, err := os.ReadDir(qdir)
			if err != nil {
				t.Fatal(err)
			}
			var frames int
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".frame") {
					frames++
					if b, _ := os.ReadFile(filepath.Join(qdir, e.Name())); !bytes.Equal(b, garbage) {
						t.Errorf("quarantined frame %q, want %q", b, garbage)
					}
				}
				if fi, _ := e.Info(); fi.Mode().Perm() != 0o600 {
					t.Errorf("%s has mode %v, want 0600", e.Name(), fi.Mode().Perm())
				}
			}
			if len(ents) != 2 || frames != 1 {
				t.Errorf("quarantine holds %d files (%d frames), want the commit and the stray frame", len(ents), frames)
			}
			if fi, _ := os.Stat(qdir); fi.Mode().Perm() != 0o700 {
				t.Errorf("quarantine dir has mode %v, want 0700", fi.Mode().Perm())
			}
			// The raw bytes of the message whose commit was set aside are
			// in the store under its key.
			rc, err := r.store.Get(context.Background(), postern.MsgID(bad).RawKey())
			if err != nil {
				t.Fatalf("raw of the quarantined message: %v", err)
			}
			rc.Close()
			r.stop(t)
			if n := r.mv.Stats().Quarantined; n != 2 {
				t.Errorf("Stats().Quarantined = %d, want 2", n)
			}
			// A later replay meets nothing again: no double count.
			r = openRig(t, dir, Options{}, nil)
			r.start(t)
			r.stop(t)
			if n := r.mv.Stats().Quarantined; n != 0 {
				t.Errorf("a replay after the checkpoint quarantined %d again", n)
			}
		})
	}
}

// A commit that Options.Complete cannot finish is set aside like one the
// mover cannot decode: its raw bytes are in the store, its job is not
// queued, and the messages around it move.
func TestCommitCompleteCannotFinishIsQuarantined(t *testing.T) {
	t.Parallel()
	r := openRig(t, t.TempDir(), Options{}, nil)
	r.start(t)
	before, err := write(t, r.sp, 300<<10)
	if err != nil {
		t.Fatal(err)
	}
	bad := string(postern.NewMsgID())
	m, err := r.sp.Begin(bad)
	if err != nil {
		t.Fatal(err)
	}
	m.Write(bytes.Repeat([]byte("z"), 100<<10))
	env := []byte(`{"id":"` + bad + `","fail":"no digest for you"}`)
	if err := m.Commit(context.Background(), env, []byte(`{"job":"`+bad+`"}`)); err != nil {
		t.Fatal(err)
	}
	after, err := write(t, r.sp, 10)
	if err != nil {
		t.Fatal(err)
	}
	checkMoved(t, r.store, settle(t, r.q, 2), []sent{before, after})
	if _, err := os.Stat(filepath.Join(r.dir, "quarantine", bad+".commit")); err != nil {
		t.Errorf("the commit Complete refused was not set aside: %v", err)
	}
	if _, err := r.store.Stat(context.Background(), postern.MsgID(bad).RawKey()); err != nil {
		t.Errorf("raw of the set-aside message: %v", err)
	}
	r.stop(t)
	if n := r.mv.Stats().Quarantined; n != 1 {
		t.Errorf("Stats().Quarantined = %d, want 1", n)
	}
}

// fakeClock is the backlog's and the alarm's clock.
type fakeClock struct{ off atomic.Int64 }

var clockBase = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) now() time.Time          { return clockBase.Add(time.Duration(c.off.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// switchStore fails every put while fail is set, and says so on failed.
type switchStore struct {
	Store
	fail   atomic.Bool
	failed chan struct{}
}

func (s *switchStore) PutUnsynced(ctx context.Context, key string, r io.Reader) error {
	if s.fail.Load() {
		select {
		case s.failed <- struct{}{}:
		default:
		}
		return errors.New("injected: no space left on device")
	}
	return s.Store.PutUnsynced(ctx, key, r)
}

func (s *switchStore) CreateUnsynced(ctx context.Context, key string, r io.Reader) error {
	if s.fail.Load() {
		return s.PutUnsynced(ctx, key, r)
	}
	return s.Store.CreateUnsynced(ctx, key, r)
}

// waitFor polls cond, which follows the mover's state, until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A mover that keeps failing is reported after the alarm and counted; once
// it succeeds again it is not.
func TestStalledWhenTheMoverKeepsFailing(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{}
	ss := &switchStore{failed: make(chan struct{}, 1)}
	ss.fail.Store(true)
	r := openRig(t, t.TempDir(), Options{now: clk.now}, func(s Store) Store { ss.Store = s; return ss })
	r.start(t)
	m, err := write(t, r.sp, 4000)
	if err != nil {
		t.Fatal(err)
	}
	<-ss.failed
	waitFor(t, "a failure counted", func() bool { return r.mv.Stats().MoverFailures > 0 })
	if err := r.mv.Stalled(time.Minute); err != nil {
		t.Fatalf("stalled before the alarm: %v", err)
	}
	st := r.mv.Stats()
	if st.BacklogMessages != 1 || st.BacklogBytes < 4000 {
		t.Errorf("backlog %d messages, %d bytes; want 1 of at least 4000", st.BacklogMessages, st.BacklogBytes)
	}
	clk.advance(61 * time.Second)
	if err := r.mv.Stalled(time.Minute); err == nil || !strings.Contains(err.Error(), "failed for 1m1s") {
		t.Fatalf("Stalled after 61s of failures = %v", err)
	}
	if st := r.mv.Stats(); st.OldestUnmoved != 61*time.Second {
		t.Errorf("oldest unmoved %v, want 61s", st.OldestUnmoved)
	}
	ss.fail.Store(false)
	checkMoved(t, r.store, waitJobs(t, r.q, 1), []sent{m})
	waitFor(t, "the alarm to clear", func() bool { return r.mv.Stalled(time.Minute) == nil })
	if st := r.mv.Stats(); st.BacklogMessages != 0 || st.BacklogBytes != 0 || st.OldestUnmoved != 0 {
		t.Errorf("after moving: %+v", st)
	}
	r.stop(t)
}

// A backlog that does not move (here a mover held back) is reported after
// the alarm though nothing failed.
func TestStalledWhenTheBacklogDoesNotMove(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{}
	r := openRig(t, t.TempDir(), Options{now: clk.now}, nil)
	var busy atomic.Bool
	busy.Store(true)
	r.mv.HoldWhile(busy.Load, time.Hour)
	r.start(t)
	m, err := write(t, r.sp, 100)
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(30 * time.Second)
	if err := r.mv.Stalled(time.Minute); err != nil {
		t.Fatalf("stalled before the alarm: %v", err)
	}
	clk.advance(31 * time.Second)
	if err := r.mv.Stalled(time.Minute); err == nil || !strings.Contains(err.Error(), "1 messages waiting") {
		t.Fatalf("Stalled with a backlog unmoved for 61s = %v", err)
	}
	busy.Store(false)
	checkMoved(t, r.store, waitJobs(t, r.q, 1), []sent{m})
	waitFor(t, "the backlog to empty", func() bool { return r.mv.Stats().BacklogMessages == 0 })
	if err := r.mv.Stalled(time.Minute); err != nil {
		t.Fatalf("stalled after moving: %v", err)
	}
	if n := r.mv.Stats().MoverFailures; n != 0 {
		t.Errorf("%d failures counted; none happened", n)
	}
	r.stop(t)
}
