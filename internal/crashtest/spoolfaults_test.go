//go:build crash

package crashtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/ingest"
	"github.com/postern/postern/internal/queue/fsqueue"
	"github.com/postern/postern/internal/smtpd"
	"github.com/postern/postern/internal/spool"
)

// spoolFaults, once on, fails the local gateway's path to 250 and beyond, as a full
// or failing disk would: writes into the spool log (nothing written, or half
// a frame), its shared flushes, and the mover's puts into the store, store
// syncs, job batches and progress marks. Each kind recurs on a fixed
// schedule, so every run meets each of them many times; the mover's faults
// never repeat on a retry, so it always gets through in the end.
type spoolFaults struct {
	on atomic.Bool
	// drain: the load is over; inject only the kinds the run has not met
	// yet, once each, so the run meets every kind however the timing fell.
	drain atomic.Bool

	writes, syncs, storeSyncs, batches, marks atomic.Int64

	mu       sync.Mutex
	putsSeen map[string]bool
	counts   map[string]int
}

func newSpoolFaults() *spoolFaults {
	return &spoolFaults{putsSeen: map[string]bool{}, counts: map[string]int{}}
}

// spoolFaultKinds are the faults a run must have injected.
var spoolFaultKinds = []string{"write-nothing", "write-torn", "flush", "store-put", "store-put-midway", "store-sync", "queue-batch", "mark"}

func (f *spoolFaults) count(kind string) {
	f.mu.Lock()
	f.counts[kind]++
	f.mu.Unlock()
}

// fire reports whether to inject a fault of kind now (and counts it): on
// its schedule while the load runs; once the load is over, only a kind not
// met yet, at its next chance.
func (f *spoolFaults) fire(kind string, scheduled bool) bool {
	if !f.on.Load() {
		return false
	}
	if f.drain.Load() {
		f.mu.Lock()
		seen := f.counts[kind] > 0
		f.mu.Unlock()
		if seen {
			return false
		}
	} else if !scheduled {
		return false
	}
	f.count(kind)
	return true
}

func (f *spoolFaults) snapshot() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.counts))
	for k, v := range f.counts {
		out[k] = v
	}
	return out
}

var errDiskFull = fmt.Errorf("injected: %w", syscall.ENOSPC)

// writeAt is the spool's segment write: one in 13 writes nothing, one in 13
// writes half of its frames (a torn write), then fails.
func (f *spoolFaults) writeAt(file *os.File, b []byte, off int64) (int, error) {
	n := f.writes.Add(1)
	switch {
	case f.fire("write-nothing", n%13 == 4):
		return 0, errDiskFull
	case f.fire("write-torn", n%13 == 10):
		w, _ := file.WriteAt(b[:len(b)/2], off)
		return w, errDiskFull
	}
	return file.WriteAt(b, off)
}

// sync is the spool's flush: one in 9 fails (EIO, as after a lost write).
func (f *spoolFaults) sync(file *os.File) error {
	if f.fire("flush", f.syncs.Add(1)%9 == 5) {
		return fmt.Errorf("injected: %w", syscall.EIO)
	}
	return file.Sync()
}

// moverStore fails the first put of one object in 25 (every other one
// after reading part of the body), and every fourth SyncAll, starting with
// the first. (The mover retries from its last checkpoint with a backoff
// that grows until a checkpoint succeeds: denser faults keep it from ever
// reaching one, and it falls seconds behind.)
type moverStore struct {
	*fsblob.Store
	f *spoolFaults
}

func (s moverStore) fail(key string, r io.Reader) error {
	if !s.f.on.Load() {
		return nil
	}
	s.f.mu.Lock()
	first := !s.f.putsSeen[key]
	s.f.putsSeen[key] = true
	nth := len(s.f.putsSeen)
	s.f.mu.Unlock()
	switch {
	case !first:
		return nil
	case s.f.fire("store-put-midway", nth%50 == 0):
		io.CopyN(io.Discard, r, 512)
	case !s.f.fire("store-put", nth%25 == 0 && nth%50 != 0):
		return nil
	}
	return fmt.Errorf("put %s: %w", key, errDiskFull)
}

func (s moverStore) PutUnsynced(ctx context.Context, key string, r io.Reader) error {
	if err := s.fail(key, r); err != nil {
		return err
	}
	return s.Store.PutUnsynced(ctx, key, r)
}

func (s moverStore) CreateUnsynced(ctx context.Context, key string, r io.Reader) error {
	if err := s.fail(key, r); err != nil {
		return err
	}
	return s.Store.CreateUnsynced(ctx, key, r)
}

func (s moverStore) SyncAll() error {
	if s.f.fire("store-sync", s.f.storeSyncs.Add(1)%4 == 1) {
		return fmt.Errorf("syncfs: %w", syscall.EIO)
	}
	return s.Store.SyncAll()
}

// moverQueue fails every third batch of jobs.
type moverQueue struct {
	*fsqueue.Queue
	f *spoolFaults
}

func (q moverQueue) SendBatch(ctx context.Context, bodies [][]byte, mark *fsqueue.Mark) error {
	if q.f.fire("queue-batch", q.f.batches.Add(1)%3 == 1) {
		return fmt.Errorf("commit: %w", errDiskFull)
	}
	return q.Queue.SendBatch(ctx, bodies, mark)
}

// moverMarks fails every third progress mark.
type moverMarks struct {
	*fsqueue.DB
	f *spoolFaults
}

func (m moverMarks) SetMark(ctx context.Context, mark fsqueue.Mark) error {
	if m.f.fire("mark", m.f.marks.Add(1)%3 == 1) {
		return fmt.Errorf("commit: %w", errDiskFull)
	}
	return m.DB.SetMark(ctx, mark)
}

var (
	_ spool.Store = moverStore{}
	_ spool.Queue = moverQueue{}
	_ spool.Marks = moverMarks{}
)

// TestSpoolFaultsLoseNothing runs the local gateway's front door and ingest
// path (the real smtpd, the spool log and its mover into the real fsblob
// store and fsqueue queue, laid out as the gateway's data_dir) with faults
// injected into the log's writes and flushes and into every step of the
// mover. Every reply must be 250 or 451 4.3.0, and the real gateway, started
// on the same data directory, must deliver every message that got a 250.
func TestSpoolFaultsLoseNothing(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	f := newSpoolFaults()
	// Warnings and errors (every injected fault is one) go to the test's
	// log, shown when it fails.
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))

	store, err := fsblob.New(filepath.Join(dataDir, "store"), fsblob.Options{Sync: fsblob.SyncGroup, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	db, err := fsqueue.Open(filepath.Join(dataDir, "queue.db"), fsqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inbound, err := db.Queue(app.QueueInbound, fsqueue.Config{MaxReceives: 10, DeadLetter: app.QueueInbound + "-dlq"})
	if err != nil {
		t.Fatal(err)
	}
	opts := spool.Options{Logger: log, SegmentBytes: 1 << 20, CheckpointEvery: 50 * time.Millisecond, Complete: ingest.CompleteEnvelope}
	sp, err := spool.Open(filepath.Join(dataDir, "spool"), opts.WithFaults(spool.Faults{WriteAt: f.writeAt, Sync: f.sync}))
	if err != nil {
		t.Fatal(err)
	}
	mv := spool.NewMover(sp, moverStore{store, f}, moverQueue{inbound, f}, moverMarks{db, f})
	if err := mv.Replay(context.Background()); err != nil {
		t.Fatal(err)
	}
	mv.Start()
	f.on.Store(true) // from here on: the run, not the set-up
	lim := config.Default().Limits
	srv := smtpd.New(smtpd.Config{
		Hostname: "gw.crash.test", Listener: "smtp", Mode: smtpd.ModeSMTP,
		MaxMessageBytes: 64 << 20, MaxRecipients: lim.MaxRecipients, MaxLineLength: lim.MaxLineLength,
		CommandTimeout: lim.CommandTimeout.D(), DataTimeout: lim.DataTimeout.D(), StoreTimeout: 2 * time.Second,
		MaxSessions: 100, MaxSessionsPerIP: 100, MaxAuthFailures: lim.MaxAuthFailures,
		MaxHeaderBytes: lim.MaxHeaderBytes, MaxReceived: lim.MaxReceived,
	}, []smtpd.Identity{{Name: "local", AllowPlaintext: true, Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}},
		routeAll{}, ingest.NewSpooled(sp, log), log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := newLedger()
	send(ctx, t, sendPlan{addr: ln.Addr().String(), prefix: "spoolfault", clients: 8, perClient: 25, giveUp: true,
		size: func(c, m int) int { return []int{2 << 10, 100 << 10}[(c+m)%2] }}, l)

	// Let the mover meet its faults on what was acknowledged (any kind the
	// load did not bring about once more), then stop injecting so that the
	// final move and the gateway's shutdown succeed.
	f.drain.Store(true)
	deadline := time.Now().Add(60 * time.Second)
	for missingKinds(f.snapshot()) != nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	f.on.Store(false)
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(mv.Stop(sctx), sp.Close(), db.Close(), store.Close()); err != nil {
		t.Fatal(err)
	}

	counts := f.snapshot()
	t.Logf("faults injected: %v; 250s: %d; refusals: %v", counts, len(l.acked), l.codes)
	if missing := missingKinds(counts); missing != nil {
		t.Errorf("faults never injected: %v", missing)
	}
	if len(l.acked) == 0 {
		t.Fatal("no message was accepted: the faults leave nothing to check")
	}
	for code, n := range l.codes {
		if code != 451 {
			t.Errorf("%d replies %d (only 250 and 451 are right)", n, code)
		}
	}
	for id, rep := range l.refused {
		if !strings.HasPrefix(rep, "451 4.3.0") {
			t.Errorf("message %s: %s, want 451 4.3.0", id, rep)
		}
	}

	// Everything acknowledged reaches the stages. A refused message may be
	// delivered as well (at least once: the sender's retry is then a
	// second copy); that is counted, not failed.
	rcv := newReceiver(t)
	newGateway(t, dataDir, rcv.URL(), "")
	acked := newLedger()
	for tag, id := range l.acked {
		acked.acked[tag] = id
	}
	waitDelivered(t, acked, rcv, 60*time.Second)
	refusedDelivered := 0
	for _, ds := range rcv.snapshot() {
		if _, ok := l.refused[ds[0].msgID]; ok {
			refusedDelivered++
		}
	}
	t.Logf("%d of %d refused messages were delivered as well", refusedDelivered, len(l.refused))
}

func missingKinds(counts map[string]int) []string {
	var missing []string
	for _, k := range spoolFaultKinds {
		if counts[k] == 0 {
			missing = append(missing, k)
		}
	}
	return missing
}

// routeAll routes every recipient.
type routeAll struct{}

func (routeAll) Accepts(rcpt, sender, identity string) bool { return true }

// testLog writes log lines to the test's log. Everything that logs through
// it stops before the test ends.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
