package smtpd

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/logbuf"
)

// stepListener is a listener whose every Accept waits for the test: an
// error to return, or nil to take the next real connection.
type stepListener struct {
	net.Listener
	next   chan error
	closed chan struct{}
	once   sync.Once
}

func newStepListener(t *testing.T, queued int) *stepListener {
	real, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &stepListener{Listener: real, next: make(chan error, queued), closed: make(chan struct{})}
	t.Cleanup(func() { l.Close() })
	return l
}

func (l *stepListener) Accept() (net.Conn, error) {
	select {
	case err := <-l.next:
		if err != nil {
			return nil, err
		}
		return l.Listener.Accept()
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *stepListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

func emfile() error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// acceptObserver reports each failed accept, after the server has
// recorded it.
type acceptObserver struct {
	noObserver
	failed chan string
}

func (o acceptObserver) AcceptError(listener string) { o.failed <- listener }

// logLines returns the JSON log lines in buf with the given message.
func logLines(t *testing.T, buf *logbuf.Buffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// A listener that runs out of file descriptors keeps its accept loop: the
// failures are retried, logged once, counted and reported while they last,
// and the next real connection is served.
func TestAcceptErrorsAreRetried(t *testing.T) {
	t.Parallel()
	obs := acceptObserver{failed: make(chan string, 16)}
	cfg := testConfig()
	cfg.Listener = "scanners"
	cfg.Observer = obs
	var logs logbuf.Buffer
	log := slog.New(slog.NewJSONHandler(io.MultiWriter(&logs, testLogWriter{t}), nil))
	srv := New(cfg, loopback(), routerFunc(func(string, string, string) bool { return true }), &fakeIngest{}, log)
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	srv.accept.now = clock.now

	l := newStepListener(t, 0)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })

	fail := func() {
		t.Helper()
		l.next <- emfile()
		select {
		case name := <-obs.failed:
			if name != "scanners" {
				t.Fatalf("accept error counted for listener %q", name)
			}
		case err := <-served:
			t.Fatalf("Serve returned on an accept error: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("accept error not counted")
		}
	}

	fail()
	if err := srv.Accepting(); err != nil {
		t.Fatalf("one failed accept reported at once: %v", err)
	}
	clock.advance(1500 * time.Millisecond)
	fail() // retried after the backoff, not given up
	fail()
	err := srv.Accepting()
	if err == nil || !strings.Contains(err.Error(), "scanners") || !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("Accepting after 1.5s of failures = %v, want an error naming the listener and EMFILE", err)
	}

	l.next <- nil
	d := dial(t, l.Addr().String())
	d.must("EHLO after", "250")
	if err := srv.Accepting(); err != nil {
		t.Fatalf("Accepting after a served connection: %v", err)
	}
	if got := logLines(t, &logs, "accept failed; retrying with backoff"); len(got) != 1 || got[0]["level"] != "ERROR" || got[0]["listener"] != "scanners" {
		t.Errorf("error lines for 3 failures in 1.5s: %v, want the first failure's alone", got)
	}
	if got := logLines(t, &logs, "accepting connections again"); len(got) != 1 || got[0]["failures"] != float64(3) {
		t.Errorf("recovery lines: %v, want one with failures 3", got)
	}
}

// Failures are logged at most once per acceptLogEvery, with the count of
// those the previous line did not report; a listener whose accept has not
// failed for a while is blocked waiting for clients, so it is accepting.
func TestAcceptStatusLogsAtABoundedRate(t *testing.T) {
	t.Parallel()
	var logs logbuf.Buffer
	var counted atomic.Int64
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	a := newAcceptStatus("smtp", slog.New(slog.NewJSONHandler(&logs, nil)), func(string) { counted.Add(1) })
	a.now = clock.now
	start := clock.now()
	a.failed(emfile(), acceptBackoffMin)
	for range 12 { // one a second, as at the backoff's cap
		clock.advance(time.Second)
		a.failed(emfile(), acceptBackoffMax)
		if err := a.err(); (clock.now().Sub(start) > acceptGrace) != (err != nil) {
			t.Fatalf("after %s of failures Accepting = %v", clock.now().Sub(start), err)
		}
	}
	lines := logLines(t, &logs, "accept failed; retrying with backoff")
	if len(lines) != 2 || lines[0]["failures"] != float64(1) || lines[1]["failures"] != float64(10) ||
		lines[1]["failing_ms"] != float64(10_000) {
		t.Fatalf("13 failures over 12s logged as %v; want the first, then one line for the next 10", lines)
	}
	if counted.Load() != 13 {
		t.Fatalf("counted %d failures, want 13", counted.Load())
	}
	clock.advance(acceptStale + time.Millisecond)
	if err := a.err(); err != nil {
		t.Fatalf("no failure for %s (blocked in accept): %v", acceptStale, err)
	}
	a.failed(emfile(), acceptBackoffMin) // a new outage starts its own grace
	if err := a.err(); err != nil {
		t.Fatalf("a new failure after a quiet spell reported at once: %v", err)
	}
}

func TestAcceptBackoff(t *testing.T) {
	t.Parallel()
	var got []time.Duration
	for d := time.Duration(0); len(got) < 10; {
		d = nextAcceptBackoff(d)
		got = append(got, d)
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("backoff %v, want %v ms", got, want)
		}
	}
}

// Closing a listener in its backoff ends Accept at once.
func TestCloseDuringAcceptBackoff(t *testing.T) {
	t.Parallel()
	failed := make(chan string, 16)
	l := newStepListener(t, 16)
	for range 16 {
		l.next <- emfile()
	}
	rl := newRetryListener(l, newAcceptStatus("smtp", slog.New(slog.NewJSONHandler(testLogWriter{t}, nil)), func(n string) { failed <- n }))
	accepted := make(chan error, 1)
	go func() {
		_, err := rl.Accept()
		accepted <- err
	}()
	for range 8 { // the backoff is now 640 ms
		<-failed
	}
	rl.Close()
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(300 * time.Millisecond):
		t.Fatal("Accept still in its 640 ms backoff 300 ms after Close")
	}
}

// A client that never finishes DATA cannot hold Shutdown past its
// context: the session is ended and Shutdown returns.
func TestShutdownEndsStalledUploads(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	addr, srv := startWith(t, loopback(), ing)
	busy := dial(t, addr)
	busy.must("EHLO busy", "250")
	busy.must("MAIL FROM:<a@lan>", "250")
	busy.must("RCPT TO:<app@example.com>", "250")
	busy.must("DATA", "354")
	stop := drip(busy.c, "x")
	defer stop()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if n, _ := srv.Uploads(); n == 1 {
			break // the session is in DATA: draining waits for it
		}
		if time.Now().After(deadline) {
			t.Fatal("the upload did not start")
		}
		runtime.Gosched()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := srv.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the context's deadline", err)
	}
	if took := time.Since(start); took > 300*time.Millisecond+sessionsEndWait {
		t.Fatalf("Shutdown took %s with a stalled upload", took)
	}
	if n, _ := srv.Uploads(); n != 0 || srv.Sessions() != 0 {
		t.Fatalf("%d sessions and %d uploads still open after Shutdown", srv.Sessions(), n)
	}
	if len(ing.Envs()) != 0 {
		t.Fatal("a cut-off upload was accepted")
	}
}
