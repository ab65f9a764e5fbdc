package fsblob

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedSync is an injectable sync function: each call announces itself on
// started and blocks until the test sends its result on release.
type gatedSync struct {
	started chan int // call number, from 1
	release chan error
	calls   atomic.Int32
}

func newGatedSync() *gatedSync {
	return &gatedSync{started: make(chan int, 16), release: make(chan error)}
}

func (g *gatedSync) sync() error {
	g.started <- int(g.calls.Add(1))
	return <-g.release
}

// waitAsync runs gs.Wait on its own goroutine; the channel gets its result.
func waitAsync(ctx context.Context, gs *groupSync) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- gs.Wait(ctx) }()
	return ch
}

func recvStart(t *testing.T, g *gatedSync, want int) {
	t.Helper()
	select {
	case n := <-g.started:
		if n != want {
			t.Fatalf("sync call %d started, want %d", n, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("sync call %d never started", want)
	}
}

func recvResult(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Wait never returned")
		return nil
	}
}

// The heart of group commit: a sync already running when a writer arrives
// may have started before that writer's data was written, so it must not
// release the writer; the next sync does.
func TestGroupSyncArrivalMidSyncWaitsForNextSync(t *testing.T) {
	t.Parallel()
	g := newGatedSync()
	gs := newGroupSync(g.sync)
	ctx := t.Context()

	a := waitAsync(ctx, gs)
	recvStart(t, g, 1) // sync 1 is in flight
	b := waitAsync(ctx, gs)
	waitJoined(t, gs, 2) // b has joined while sync 1 runs

	g.release <- nil // sync 1 ends
	if err := recvResult(t, a); err != nil {
		t.Fatalf("early waiter: %v", err)
	}
	select {
	case err := <-b:
		t.Fatalf("late waiter released by the sync in flight when it arrived (err %v)", err)
	case <-g.started:
		// sync 2 is running: the late waiter must still be waiting for it.
	case <-time.After(5 * time.Second):
		t.Fatal("no second sync for the late waiter")
	}
	select {
	case err := <-b:
		t.Fatalf("late waiter returned (%v) before its sync finished", err)
	case <-time.After(20 * time.Millisecond):
	}
	g.release <- nil
	if err := recvResult(t, b); err != nil {
		t.Fatalf("late waiter: %v", err)
	}
	if n := gs.rounds.Load(); n != 2 {
		t.Fatalf("rounds = %d, want 2", n)
	}
}

// Everyone who arrives during one sync is covered by one following sync.
func TestGroupSyncBatchesArrivalsIntoOneSync(t *testing.T) {
	t.Parallel()
	g := newGatedSync()
	gs := newGroupSync(g.sync)
	ctx := t.Context()

	first := waitAsync(ctx, gs)
	recvStart(t, g, 1)
	const n = 20
	results := make([]<-chan error, n)
	for i := range n {
		results[i] = waitAsync(ctx, gs)
	}
	waitJoined(t, gs, n+1)
	g.release <- nil
	if err := recvResult(t, first); err != nil {
		t.Fatal(err)
	}
	recvStart(t, g, 2)
	g.release <- nil
	for i, ch := range results {
		if err := recvResult(t, ch); err != nil {
			t.Fatalf("waiter %d: %v", i, err)
		}
	}
	if c := g.calls.Load(); c != 2 {
		t.Fatalf("sync called %d times for %d waiters, want 2", c, n+1)
	}
}

func TestGroupSyncErrorReachesWholeRound(t *testing.T) {
	t.Parallel()
	g := newGatedSync()
	gs := newGroupSync(g.sync)
	ctx := t.Context()

	first := waitAsync(ctx, gs)
	recvStart(t, g, 1)
	b, c := waitAsync(ctx, gs), waitAsync(ctx, gs)
	waitJoined(t, gs, 3)
	g.release <- nil
	if err := recvResult(t, first); err != nil {
		t.Fatal(err)
	}
	recvStart(t, g, 2)
	boom := errors.New("EIO")
	g.release <- boom
	for _, ch := range []<-chan error{b, c} {
		if err := recvResult(t, ch); !errors.Is(err, boom) {
			t.Fatalf("Wait = %v, want the sync's error", err)
		}
	}
	// A failed round does not poison the next one.
	d := waitAsync(ctx, gs)
	recvStart(t, g, 3)
	g.release <- nil
	if err := recvResult(t, d); err != nil {
		t.Fatalf("Wait after a failed round: %v", err)
	}
}

func TestGroupSyncContextReleasesWaiter(t *testing.T) {
	t.Parallel()
	g := newGatedSync()
	gs := newGroupSync(g.sync)

	ctx, cancel := context.WithCancel(t.Context())
	a := waitAsync(ctx, gs)
	recvStart(t, g, 1)
	cancel()
	if err := recvResult(t, a); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	// The sync it left keeps running and others still get it.
	other := waitAsync(t.Context(), gs)
	g.release <- nil
	recvStart(t, g, 2)
	g.release <- nil
	if err := recvResult(t, other); err != nil {
		t.Fatal(err)
	}
	if err := gs.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with an ended context = %v, want context.Canceled", err)
	}
}

func TestGroupSyncOneSyncAtATime(t *testing.T) {
	t.Parallel()
	var inFlight, most atomic.Int32
	gs := newGroupSync(func() error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		return nil
	})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 10 {
				if err := gs.Wait(t.Context()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m != 1 {
		t.Fatalf("up to %d syncs ran at once, want 1", m)
	}
	if r := gs.rounds.Load(); r >= 160 {
		t.Fatalf("%d syncs for 160 waits: no batching", r)
	}
	t.Logf("%d syncs for 160 waits", gs.rounds.Load())
}

func TestGroupSyncPanicBecomesError(t *testing.T) {
	t.Parallel()
	calls := 0
	gs := newGroupSync(func() error {
		calls++
		if calls == 1 {
			panic("bad sync")
		}
		return nil
	})
	if err := gs.Wait(t.Context()); err == nil {
		t.Fatal("Wait = nil after the sync panicked")
	}
	if err := gs.Wait(t.Context()); err != nil {
		t.Fatalf("Wait after a panicked round: %v", err)
	}
}

// waitJoined waits until n Wait calls in all have joined a round.
func waitJoined(t *testing.T, gs *groupSync, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for gs.joins.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d callers joined, want %d", gs.joins.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
