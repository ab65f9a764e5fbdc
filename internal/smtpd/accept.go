package smtpd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A listener's accept can fail while the listener is fine: out of file
// descriptors (EMFILE, ENFILE) under load, out of buffers, a connection
// aborted before it was taken. Such a failure never ends the accept loop:
// it is retried with backoff, logged at a bounded rate, counted, and
// reported by Server.Accepting while it lasts.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
	// acceptLogEvery bounds the error lines: the first failure, then at
	// most one line (with the count) per period.
	acceptLogEvery = 10 * time.Second
	// acceptGrace is how long a listener may fail before it is reported
	// as not accepting: one failed accept is not an outage.
	acceptGrace = time.Second
	// acceptStale: a listener whose latest failure is older than this is
	// blocked in accept, waiting for a client (retries come at least
	// every acceptBackoffMax), so it is accepting again.
	acceptStale = 2 * acceptBackoffMax
)

// retryListener is the real listener with its failures absorbed: Accept
// returns a connection, or an error only once the listener is closed.
type retryListener struct {
	net.Listener
	status *acceptStatus
	done   chan struct{} // closed by Close: Accept returns net.ErrClosed
	once   sync.Once
}

func newRetryListener(l net.Listener, status *acceptStatus) *retryListener {
	return &retryListener{Listener: l, status: status, done: make(chan struct{})}
}

// Accept waits for the next connection. Any error but a closed listener's
// is retried after a backoff (acceptBackoffMin doubling to
// acceptBackoffMax, from the start again at each call, so after every
// successful accept).
func (rl *retryListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := rl.Listener.Accept()
		if err == nil {
			rl.status.succeeded()
			return c, nil
		}
		select {
		case <-rl.done:
			return nil, net.ErrClosed
		default:
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		delay = nextAcceptBackoff(delay)
		rl.status.failed(err, delay)
		t := time.NewTimer(delay)
		select {
		case <-rl.done:
			t.Stop()
			return nil, net.ErrClosed
		case <-t.C:
		}
	}
}

// nextAcceptBackoff is the wait after d (0 at the first failure).
func nextAcceptBackoff(d time.Duration) time.Duration {
	return min(max(d*2, acceptBackoffMin), acceptBackoffMax)
}

// Close closes the real listener and ends a backoff in progress.
func (rl *retryListener) Close() error {
	rl.once.Do(func() { close(rl.done) })
	return rl.Listener.Close()
}

// acceptStatus is how one listener's accept loop fares: it logs and counts
// failures and answers Server.Accepting.
type acceptStatus struct {
	listener string
	log      *slog.Logger
	observe  func(listener string)
	now      func() time.Time

	failing atomic.Bool // since is set: lets succeeded skip the lock

	mu sync.Mutex
	// Guarded by mu. since is zero while the listener accepts; otherwise
	// it is when the current run of failures began, lastAt the latest
	// failure (lastAt >= since), lastErr its error and failures how many
	// there have been since since. loggedAt is when the last error line was
	// written (across runs, so a flapping listener logs no more often),
	// unlogged how many failures that line and later ones did not report,
	// and logged whether the current run wrote one (then its end is
	// logged too).
	since, lastAt time.Time
	lastErr       error
	failures      int
	loggedAt      time.Time
	unlogged      int
	logged        bool
}

func newAcceptStatus(listener string, log *slog.Logger, observe func(string)) *acceptStatus {
	return &acceptStatus{listener: listener, log: log, observe: observe, now: time.Now}
}

// failed records a failed accept that is retried after delay.
func (a *acceptStatus) failed(err error, delay time.Duration) {
	now := a.now()
	a.mu.Lock()
	if a.since.IsZero() || now.Sub(a.lastAt) > acceptStale {
		a.since, a.failures, a.logged = now, 0, false
		a.failing.Store(true)
	}
	a.lastAt, a.lastErr = now, err
	a.failures++
	a.unlogged++
	write := a.loggedAt.IsZero() || now.Sub(a.loggedAt) >= acceptLogEvery
	n, since := a.unlogged, a.since
	if write {
		a.loggedAt, a.unlogged, a.logged = now, 0, true
	}
	a.mu.Unlock()

	a.observe(a.listener)
	if write {
		a.log.Error("accept failed; retrying with backoff", slog.String("stage", "gateway"),
			slog.String("listener", a.listener), slog.String("error", err.Error()),
			slog.Int("failures", n), slog.Int64("failing_ms", now.Sub(since).Milliseconds()),
			slog.Int64("retry_in_ms", delay.Milliseconds()))
	}
}

// succeeded records an accepted connection.
func (a *acceptStatus) succeeded() {
	if !a.failing.Load() {
		return
	}
	now := a.now()
	a.mu.Lock()
	since, n, logged := a.since, a.failures, a.logged
	a.since, a.lastAt, a.lastErr, a.failures, a.logged = time.Time{}, time.Time{}, nil, 0, false
	a.failing.Store(false)
	a.mu.Unlock()
	if logged && !since.IsZero() {
		a.log.Info("accepting connections again", slog.String("stage", "gateway"),
			slog.String("listener", a.listener), slog.Int("failures", n),
			slog.Int64("failed_for_ms", now.Sub(since).Milliseconds()))
	}
}

// err reports a listener that has been failing for more than acceptGrace.
func (a *acceptStatus) err() error {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.since.IsZero() || now.Sub(a.lastAt) > acceptStale {
		return nil
	}
	if d := now.Sub(a.since); d > acceptGrace {
		return fmt.Errorf("listener %s not accepting connections for %s (%d failures): %w",
			a.listener, d.Round(time.Millisecond), a.failures, a.lastErr)
	}
	return nil
}
