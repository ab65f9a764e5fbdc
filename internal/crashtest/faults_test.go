//go:build crash

package crashtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/ingest"
	"github.com/postern/postern/internal/loadgen"
)

// fault is one way a store or queue write can fail.
type fault int

const (
	faultNone      fault = iota
	faultRawEarly        // the raw Put fails before reading anything (ENOSPC at create)
	faultRawMidway       // the raw Put fails halfway through the body (ENOSPC while writing)
	faultRawAtEnd        // the raw Put reads everything, then fails (EIO at fsync)
	faultEnvelope        // the raw message is stored, the envelope Put fails (the spool's path; the direct path writes no envelope.json)
	faultEnqueue         // both objects are stored, the enqueue fails
	faultSlow            // the raw Put hangs past limits.store_timeout
	faultKinds
)

func (f fault) String() string {
	return [...]string{"none", "raw-early", "raw-midway", "raw-at-end", "envelope", "queue", "slow"}[f]
}

// faults decides, per message, whether and how its writes fail, and records
// which message ids it failed. Every third message is left alone; the others
// cycle through kinds, so each kind is met many times.
type faults struct {
	kinds []fault // cycled through

	mu      sync.Mutex
	seq     int
	faulted int              // messages given a fault so far
	byID    map[string]fault // message id -> its fault
	counts  map[fault]int
}

func newFaults(kinds ...fault) *faults {
	return &faults{kinds: kinds, byID: map[string]fault{}, counts: map[fault]int{}}
}

// decide picks the fault for a message on its first write.
func (f *faults) decide(id string) fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k, ok := f.byID[id]; ok {
		return k
	}
	f.seq++
	k := faultNone
	if f.seq%3 != 0 {
		k = f.kinds[f.faulted%len(f.kinds)]
		f.faulted++
	}
	f.byID[id] = k
	f.counts[k]++
	return k
}

func (f *faults) of(id string) fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byID[id]
}

var errInjected = errors.New("injected: no space left on device")

// slowCap is how long a stalled Put waits for the gateway to give up on it.
const slowCap = 3 * time.Second

// faultStore is the real store behind injected failures.
type faultStore struct {
	blob.Store
	f *faults
}

// idOf takes the message id out of a key "m/<shard>/<id>/<name>".
func idOf(key string) string {
	parts := strings.Split(key, "/")
	if len(parts) < 4 {
		return ""
	}
	return parts[2]
}

func (s faultStore) Put(ctx context.Context, key string, r io.Reader, o *blob.PutOptions) error {
	id := idOf(key)
	k := s.f.decide(id)
	raw := strings.HasSuffix(key, "/raw.eml")
	switch {
	case raw && k == faultRawEarly:
		return fmt.Errorf("create temp: %w", errInjected)
	case raw && k == faultRawMidway:
		// Let the real store write half, then fail its reader, as a disk
		// filling up mid-message would.
		return s.Store.Put(ctx, key, &failAfter{r: r, n: 1 << 10}, o)
	case raw && k == faultRawAtEnd:
		if err := s.Store.Put(ctx, key, r, o); err != nil {
			return err
		}
		return fmt.Errorf("sync: %w", errInjected)
	case raw && k == faultSlow:
		// The gateway's store timeout should end this; the cap only keeps a
		// gateway without one from hanging the test.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(slowCap):
			return fmt.Errorf("store stalled for %s: %w", slowCap, errInjected)
		}
	case !raw && k == faultEnvelope:
		return fmt.Errorf("create temp: %w", errInjected)
	}
	return s.Store.Put(ctx, key, r, o)
}

// failAfter reads n bytes of r and then fails.
type failAfter struct {
	r io.Reader
	n int
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errInjected
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// faultQueue fails the enqueue of messages whose fault is faultEnqueue.
type faultQueue struct {
	ingest.Sender
	f *faults
}

func (q faultQueue) Send(ctx context.Context, body []byte, delay time.Duration) (string, error) {
	// The job may go before the raw Put starts (ingest sends both at once),
	// so the message's fault is decided by whichever comes first.
	var job struct{ ID string }
	if json.Unmarshal(body, &job) == nil && q.f.decide(job.ID) == faultEnqueue {
		return "", fmt.Errorf("commit: %w", errInjected)
	}
	return q.Sender.Send(ctx, body, delay)
}

func (f *faults) snapshot() map[string]fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]fault, len(f.byID))
	for k, v := range f.byID {
		out[k] = v
	}
	return out
}

// TestStoreAndQueueFaultsAnswer451 runs the gateway's front door and ingest
// path (the real smtpd, ingest, fsblob and fsqueue) with store and queue
// failures injected in every phase of a write. Each failed message must be
// answered 451 4.3.0 and every other 250; then the real gateway, started on
// the same data directory, must deliver every message that got a 250 and
// none that got a 451.
func TestStoreAndQueueFaultsAnswer451(t *testing.T) {
	t.Parallel()
	faultRun(t, newFaults(faultRawEarly, faultRawMidway, faultRawAtEnd, faultEnqueue), 15)
}

// TestStalledStoreAnswers451 stalls the store's writes: the gateway must give
// up after limits.store_timeout and answer 451 4.4.5, and lose nothing.
func TestStalledStoreAnswers451(t *testing.T) {
	t.Parallel()
	faultRun(t, newFaults(faultSlow), 3)
}

// faultRun sends 8 clients' perClient messages through the ingest path with
// f's faults and checks replies and delivery.
func faultRun(t *testing.T, f *faults, perClient int) {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv, err := loadgen.NewIngestServer(loadgen.IngestOptions{
		DataDir: dataDir, Sync: fsblob.SyncEach, StoreTimeout: 500 * time.Millisecond,
		WrapStore: func(s blob.Store) blob.Store { return faultStore{Store: s, f: f} },
		WrapQueue: func(q ingest.Sender) ingest.Sender { return faultQueue{Sender: q, f: f} },
		Log:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := newLedger()
	send(ctx, t, sendPlan{addr: ln.Addr().String(), prefix: "fault", clients: 8, perClient: perClient, giveUp: true,
		size: func(c, m int) int { return []int{2 << 10, 64 << 10}[(c+m)%2] }}, l)
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}

	// Replies against injected faults, message by message; wrong replies
	// are reported once per kind, with an example.
	wrong := map[string][]string{}
	for _, id := range sortedKeys(ackedIDs(l)) {
		if k := f.of(id); k != faultNone {
			wrong[k.String()+" answered 250"] = append(wrong[k.String()+" answered 250"], id)
		}
	}
	for id, rep := range l.refused {
		k := f.of(id)
		want := "451 4.3.0"
		if k == faultSlow {
			want = "451 4.4.5" // limits.store_timeout
		}
		if k == faultNone || !strings.HasPrefix(rep, want) {
			what := fmt.Sprintf("%s answered %.9s, want %s", k, rep, want)
			wrong[what] = append(wrong[what], id)
		}
	}
	for what, ids := range wrong {
		t.Errorf("%d messages: %s (e.g. %s)", len(ids), what, ids[0])
	}
	for code := range l.codes {
		if code != 451 {
			t.Errorf("replies with code %d: %v (only 250 and 451 are right)", code, l.codes)
		}
	}
	f.mu.Lock()
	t.Logf("faults injected: %v; 250s: %d; 451s: %d", f.counts, len(l.acked), len(l.refused))
	for _, k := range f.kinds {
		if f.counts[k] == 0 {
			t.Errorf("fault %s was never injected", k)
		}
	}
	f.mu.Unlock()

	// Everything the front door acknowledged is there for the stages.
	rcv := newReceiver(t)
	newGateway(t, dataDir, rcv.URL(), "")
	waitDelivered(t, l, rcv, 60*time.Second)
	if got, want := rcv.total(), len(l.acked); got < want {
		t.Errorf("%d deliveries for %d accepted messages", got, want)
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
