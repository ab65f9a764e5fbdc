package fsblob

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// groupSync lets many writers share one expensive sync call (group commit).
//
// Each Wait joins the next round: a round is a single call of the sync
// function that starts after every one of its members has joined, so it
// covers all writes they issued before calling Wait. A caller that arrives
// while a round is in flight is not covered by it (that sync may have started
// before the caller's write) and waits for the following round. Rounds run one
// at a time on a leader goroutine that exists only while rounds are pending;
// whoever arrives while a round runs is batched into the next one, so the
// number of syncs grows with the number of sync durations, not of writers.
type groupSync struct {
	sync   func() error
	rounds atomic.Uint64 // completed syncs, for tests and benchmarks
	joins  atomic.Uint64 // callers that joined a round, likewise

	mu      sync.Mutex
	next    *syncRound // round that new callers join; nil when none pending
	leading bool       // a leader goroutine is running rounds
}

// syncRound is one shared sync; done is closed once err is set.
type syncRound struct {
	done chan struct{}
	err  error
}

func newGroupSync(sync func() error) *groupSync {
	return &groupSync{sync: sync}
}

// Wait returns once a sync that started after Wait was called has finished,
// with that sync's error, or earlier with ctx's error if ctx ends first. The
// sync itself still runs for the other members of the round.
func (g *groupSync) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("group sync: %w", err)
	}
	g.mu.Lock()
	if g.next == nil {
		g.next = &syncRound{done: make(chan struct{})}
	}
	r := g.next
	g.joins.Add(1)
	if !g.leading {
		g.leading = true
		go g.lead()
	}
	g.mu.Unlock()

	select {
	case <-r.done:
		if r.err != nil {
			return fmt.Errorf("group sync: %w", r.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("group sync: %w", ctx.Err())
	}
}

// lead runs pending rounds one after another until none is left. Taking the
// round out of g.next under the lock before calling sync is what keeps late
// arrivals out of a round already in flight.
func (g *groupSync) lead() {
	for {
		g.mu.Lock()
		r := g.next
		if r == nil {
			g.leading = false
			g.mu.Unlock()
			return
		}
		g.next = nil
		g.mu.Unlock()

		r.err = g.call()
		g.rounds.Add(1)
		close(r.done)
	}
}

// call runs the sync function, turning a panic into an error so that one bad
// round fails its writers instead of the process.
func (g *groupSync) call() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("sync panicked: %v", p)
		}
	}()
	return g.sync()
}
