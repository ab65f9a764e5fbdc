package spool

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// backlog is what this process acknowledged and the mover has not queued
// yet, for metrics and the stall alarm.
type backlog struct {
	mu sync.Mutex
	// Guarded by mu. entries are in log order (by end); bytes is the sum
	// of their sizes; progress is when the mover last took an entry off,
	// or when entries last became non-empty, whichever is later.
	entries  []unmoved
	bytes    int64
	progress time.Time
}

// unmoved is one acknowledged message: where its commit frame ends, its
// raw, envelope and job bytes, and when it was acknowledged.
type unmoved struct {
	end  Pos
	size int64
	at   time.Time
}

// committed records an acknowledged message whose commit ends at end.
func (s *Spool) committed(end Pos, size int64) {
	b := &s.backlog
	now := s.opts.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.entries) == 0 {
		b.progress = now
	}
	// Commits end nearly in order: search from the back.
	i := len(b.entries)
	for i > 0 && end.Less(b.entries[i-1].end) {
		i--
	}
	b.entries = slices.Insert(b.entries, i, unmoved{end: end, size: size, at: now})
	b.bytes += size
}

// movedTo records that every commit before pos has its job queued (or was
// quarantined).
func (s *Spool) movedTo(pos Pos) {
	b := &s.backlog
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for n < len(b.entries) && !pos.Less(b.entries[n].end) {
		b.bytes -= b.entries[n].size
		n++
	}
	if n > 0 {
		b.entries = slices.Delete(b.entries, 0, n)
		b.progress = s.opts.now()
	}
}

// Stats is the spool's state for metrics.
type Stats struct {
	// BacklogMessages and BacklogBytes count messages acknowledged by
	// this process whose jobs are not queued yet (raw, envelope and job
	// bytes); OldestUnmoved is the age of the oldest.
	BacklogMessages int
	BacklogBytes    int64
	OldestUnmoved   time.Duration
	// MoverFailures counts the mover's failed attempts (each is retried
	// from the last checkpoint); Quarantined counts commits and frames it
	// could not decode and set aside (see Options.QuarantineDir).
	MoverFailures uint64
	Quarantined   uint64
}

// moverHealth is what the mover's attempts have been like.
type moverHealth struct {
	failures    atomic.Uint64
	quarantined atomic.Uint64

	mu sync.Mutex
	// Guarded by mu. lastErr is the last attempt's error, nil if it
	// succeeded; lastOK is when an attempt last succeeded (or the mover
	// started).
	lastErr error
	lastOK  time.Time
}

func (h *moverHealth) attempt(err error, now time.Time) {
	if err != nil {
		h.failures.Add(1)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr = err
	if err == nil {
		h.lastOK = now
	}
}

// Stats reports the backlog and the mover's failures.
func (m *Mover) Stats() Stats {
	b := &m.s.backlog
	now := m.s.opts.now()
	b.mu.Lock()
	st := Stats{BacklogMessages: len(b.entries), BacklogBytes: b.bytes}
	for _, e := range b.entries {
		st.OldestUnmoved = max(st.OldestUnmoved, now.Sub(e.at))
	}
	b.mu.Unlock()
	st.MoverFailures = m.health.failures.Load()
	st.Quarantined = m.health.quarantined.Load()
	return st
}

// Stalled reports why the mover has been failing for longer than alarm:
// its last attempt failed and none has succeeded for that long, or
// acknowledged messages wait and none has been moved for that long. It
// returns nil otherwise. The reason names no paths or error text; the
// mover logs those.
func (m *Mover) Stalled(alarm time.Duration) error {
	now := m.s.opts.now()
	m.health.mu.Lock()
	failing, lastOK := m.health.lastErr != nil, m.health.lastOK
	m.health.mu.Unlock()
	if failing && now.Sub(lastOK) > alarm {
		return fmt.Errorf("spool mover has failed for %s (see the log)", now.Sub(lastOK).Round(time.Second))
	}
	b := &m.s.backlog
	b.mu.Lock()
	waiting, progress := len(b.entries), b.progress
	b.mu.Unlock()
	if waiting > 0 && now.Sub(progress) > alarm {
		return fmt.Errorf("spool mover has moved nothing for %s with %d messages waiting", now.Sub(progress).Round(time.Second), waiting)
	}
	return nil
}
