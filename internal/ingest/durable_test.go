package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/spool"
)

// fakeClock is a clock tests move by hand. tick, when set, is added at every
// reading, for code whose own work the test cannot slow down.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	tick time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.tick)
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// slowUpload is a client that takes a minute for every read of its DATA.
type slowUpload struct {
	r     io.Reader
	clock *fakeClock
}

func (s slowUpload) Read(p []byte) (int, error) {
	s.clock.advance(time.Minute)
	return s.r.Read(p[:min(len(p), 4)])
}

// slowQueue is an inbound queue whose send takes d.
type slowQueue struct {
	Sender
	clock *fakeClock
	d     time.Duration
}

func (q slowQueue) Send(ctx context.Context, b []byte, delay time.Duration) (string, error) {
	q.clock.advance(q.d)
	return q.Sender.Send(ctx, b, delay)
}

// durableMS returns durable_ms from the "message accepted" line in logs.
func durableMS(t *testing.T, logs *bytes.Buffer) int64 {
	t.Helper()
	for _, l := range strings.Split(logs.String(), "\n") {
		var rec struct {
			Msg       string
			DurableMS *int64 `json:"durable_ms"`
		}
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "message accepted" && rec.DurableMS != nil {
			return *rec.DurableMS
		}
	}
	t.Fatalf("no message accepted line with durable_ms in %s", logs)
	return 0
}

// durable_ms is the gateway's own time to make a message safe, from the end
// of DATA: a client that takes minutes to upload does not count.
func TestDurableMSStartsAtTheEndOfData(t *testing.T) {
	t.Parallel()
	st, q := setup(t)
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	var logs bytes.Buffer
	in := New(st, slowQueue{Sender: q, clock: clock, d: 2500 * time.Millisecond}, slog.New(slog.NewJSONHandler(&logs, nil)))
	in.now = clock.now
	body := slowUpload{r: strings.NewReader("Subject: slow\r\n\r\none line a minute\r\n"), clock: clock}
	if err := in.Accept(t.Context(), newEnv(), body); err != nil {
		t.Fatal(err)
	}
	if got := durableMS(t, &logs); got != 2500 {
		t.Errorf("durable_ms = %d, want 2500 (the queue's send, not the upload's minutes)", got)
	}
}

func TestSpooledDurableMSStartsAtTheEndOfData(t *testing.T) {
	t.Parallel()
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	// Every reading of the clock is 3 s after the one before: the reading at
	// the end of DATA and the one after the commit are one tick apart.
	clock := &fakeClock{t: time.Unix(1e9, 0), tick: 3 * time.Second}
	var logs bytes.Buffer
	in := NewSpooled(sp, slog.New(slog.NewJSONHandler(&logs, nil)))
	in.now = clock.now
	body := slowUpload{r: strings.NewReader("Subject: slow\r\n\r\none line a minute\r\n"), clock: clock}
	if err := in.Accept(t.Context(), newEnv(), body); err != nil {
		t.Fatal(err)
	}
	if got := durableMS(t, &logs); got != 3000 {
		t.Errorf("durable_ms = %d, want 3000 (the commit, not the upload's minutes)", got)
	}
}
