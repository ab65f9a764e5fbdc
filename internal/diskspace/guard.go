// Package diskspace tells whether the filesystem under a directory is
// running out of room, cheaply enough to ask on every SMTP MAIL command.
package diskspace

import (
	"fmt"
	"sync"
	"time"
)

// DefaultTTL is how long a measurement is reused: long enough that MAIL
// does not pay a system call each time, short enough that a filling disk
// is noticed within a second.
const DefaultTTL = time.Second

// Guard compares the free space of a directory's filesystem with a minimum.
type Guard struct {
	dir  string
	min  uint64
	free func(dir string) (uint64, error)
	now  func() time.Time
	ttl  time.Duration

	// mu guards the last measurement: at is when it was taken (zero before
	// the first); avail and err are its result. A caller that finds it
	// older than ttl measures again while holding mu, so concurrent callers
	// wait for one system call rather than each making their own.
	mu    sync.Mutex
	at    time.Time
	avail uint64
	err   error
}

// Options tune a Guard; the zero value measures with Free, on the real
// clock, every DefaultTTL.
type Options struct {
	Free func(dir string) (uint64, error) // nil: Free
	Now  func() time.Time                 // nil: time.Now
	TTL  time.Duration                    // 0: DefaultTTL
}

// New returns a Guard that reports dir low when fewer than min bytes are
// free to unprivileged users.
func New(dir string, min uint64, opts Options) *Guard {
	g := &Guard{dir: dir, min: min, free: opts.Free, now: opts.Now, ttl: opts.TTL}
	if g.free == nil {
		g.free = Free
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.ttl <= 0 {
		g.ttl = DefaultTTL
	}
	return g
}

func (g *Guard) measure() (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := g.now(); g.at.IsZero() || now.Sub(g.at) >= g.ttl || now.Before(g.at) {
		g.avail, g.err = g.free(g.dir)
		g.at = now
	}
	return g.avail, g.err
}

// Low reports whether free space is under the minimum. A failed
// measurement is not "low" (Check reports it): refusing all mail because
// statfs failed once would turn a passing fault into an outage, and a
// data_dir that is really broken fails the spool's own writes.
func (g *Guard) Low() bool {
	avail, err := g.measure()
	return err == nil && avail < g.min
}

// Check returns an error saying how much is free when it is under the
// minimum, or why it could not be measured; nil otherwise.
func (g *Guard) Check() error {
	avail, err := g.measure()
	if err != nil {
		return fmt.Errorf("free space of %s unknown: %w", g.dir, err)
	}
	if avail < g.min {
		return fmt.Errorf("free disk %d bytes under limits.min_free_bytes %d", avail, g.min)
	}
	return nil
}
