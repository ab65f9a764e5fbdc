package retention_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/retention"
	"github.com/postern/postern/internal/trace"
)

var now = time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// idAt mints a message id received age before now.
func idAt(t *testing.T, age time.Duration) postern.MsgID {
	t.Helper()
	u, err := ulid.New(ulid.Timestamp(now.Add(-age)), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return postern.MsgID(u.String())
}

type fixture struct {
	t      *testing.T
	store  *fsblob.Store
	outbox string // the default route's directory outbox
	dsn    string
	log    bytes.Buffer
	mu     sync.Mutex
	purged map[string]int
	inUse  map[postern.MsgID]bool
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	store, err := fsblob.New(filepath.Join(dir, "store"), fsblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := &fixture{t: t, store: store, outbox: filepath.Join(dir, "outbox"), dsn: filepath.Join(dir, "dsn-outbox"),
		purged: map[string]int{}, inUse: map[postern.MsgID]bool{}}
	for _, d := range []string{f.outbox, f.dsn} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) purger(inUseErr error) *retention.Purger {
	f.t.Helper()
	p, err := retention.New(retention.Config{
		Store:   f.store,
		Default: 30 * day,
		Routes:  map[string]time.Duration{"archive": 90 * day, "short": 7 * day},
		Outboxes: []retention.Outbox{
			{Kind: retention.KindWebhookOutbox, Dir: f.outbox, Route: "default"},
			{Kind: retention.KindDSNOutbox, Dir: f.dsn},
			{Kind: retention.KindRelayOutbox, Dir: filepath.Join(f.outbox, "never-made")},
		},
		InUse: func(context.Context) (func(postern.MsgID) bool, error) {
			if inUseErr != nil {
				return nil, inUseErr
			}
			return func(id postern.MsgID) bool { return f.inUse[id] }, nil
		},
		Purged: func(kind string, n int) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.purged[kind] += n
		},
		Now: func() time.Time { return now },
		Log: slog.New(slog.NewTextHandler(&f.log, nil)),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// message stores a message's objects as the stages do, with a trace record
// (or relay state) for each route it went to.
func (f *fixture) message(age time.Duration, routes ...string) postern.MsgID {
	f.t.Helper()
	ctx := f.t.Context()
	id := idAt(f.t, age)
	for _, k := range []string{id.RawKey(), id.EnvelopeKey(), id.ParsedKey(), id.AttachmentKey(0)} {
		if err := f.store.Put(ctx, k, strings.NewReader("x"), nil); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := trace.Append(ctx, f.store, id, trace.Event{Stage: "parse", Event: "done"}); err != nil {
		f.t.Fatal(err)
	}
	for _, r := range routes {
		if r == "relayed" {
			if err := f.store.Put(ctx, relay.StateKey(id, "short"), strings.NewReader("{}"), nil); err != nil {
				f.t.Fatal(err)
			}
			continue
		}
		if err := trace.Append(ctx, f.store, id, trace.Event{Stage: "webhook", Event: "done", Route: r}); err != nil {
			f.t.Fatal(err)
		}
	}
	return id
}

func (f *fixture) stored(id postern.MsgID) bool {
	f.t.Helper()
	_, err := f.store.Stat(f.t.Context(), id.RawKey())
	if err != nil && !errors.Is(err, blob.ErrNotFound) {
		f.t.Fatal(err)
	}
	return err == nil
}

func (f *fixture) file(dir, name string) string {
	f.t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestPurge(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	oldDefault := f.message(40*day, "default")
	young := f.message(10*day, "default")
	busy := f.message(40*day, "default")
	f.inUse[busy] = true
	archived := f.message(40*day, "archive")
	shortOnly := f.message(10*day, "short")
	relayedShort := f.message(10*day, "relayed")
	both := f.message(40*day, "short", "archive") // the longest of its routes wins
	unknown := f.message(40 * day)                // no route known: the longest retention
	veryOld := f.message(100 * day)

	oldFile := f.file(f.outbox, string(oldDefault)+".default.json")
	youngFile := f.file(f.outbox, string(young)+".default.json")
	busyFile := f.file(f.outbox, string(busy)+".default.json")
	notOurs := f.file(f.outbox, "notes.txt")
	temp := f.file(f.outbox, "."+string(oldDefault)+".default.json.tmp-1")
	oldDSN := f.file(f.dsn, string(oldDefault)+".0123456789abcdef.eml")
	youngDSN := f.file(f.dsn, string(young)+".0123456789abcdef.eml")

	p := f.purger(nil)
	rep, err := p.Purge(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[postern.MsgID]bool{oldDefault: false, young: true, busy: true, archived: true,
		shortOnly: false, relayedShort: false, both: true, unknown: true, veryOld: false} {
		if got := f.stored(id); got != want {
			t.Errorf("message %s kept = %v, want %v", id, got, want)
		}
	}
	for file, want := range map[string]bool{oldFile: false, youngFile: true, busyFile: true, notOurs: true, temp: true, oldDSN: false, youngDSN: true} {
		if got := exists(file); got != want {
			t.Errorf("%s kept = %v, want %v", filepath.Base(file), got, want)
		}
	}
	// Every object of a purged message is gone, directory included.
	if dir, _ := f.store.Path(oldDefault.Prefix()); exists(dir) {
		t.Errorf("purged message's directory %s is still there", dir)
	}
	if rep.Purged[retention.KindMessage] != 4 || rep.Purged[retention.KindWebhookOutbox] != 1 || rep.Purged[retention.KindDSNOutbox] != 1 || rep.InUse != 1 || rep.Errors != 0 {
		t.Errorf("report = %+v", rep)
	}
	if f.purged[retention.KindMessage] != 4 || f.purged[retention.KindWebhookOutbox] != 1 || f.purged[retention.KindDSNOutbox] != 1 {
		t.Errorf("counted %v", f.purged)
	}
	if !strings.Contains(f.log.String(), `level=INFO msg="retention run" stage=retention messages=4 webhook_outbox=1 relay_outbox=0 dsn_outbox=1 kept_in_use=1 errors=0`) {
		t.Errorf("log line missing or wrong:\n%s", f.log.String())
	}

	// Idempotent: a second run finds nothing more.
	rep, err = p.Purge(t.Context())
	if err != nil || rep.Purged[retention.KindMessage]+rep.Purged[retention.KindWebhookOutbox]+rep.Purged[retention.KindDSNOutbox] != 0 || rep.InUse != 1 {
		t.Errorf("second run = %+v, %v; want nothing purged", rep, err)
	}
	// Once its jobs are done, the busy message goes too.
	delete(f.inUse, busy)
	if rep, err := p.Purge(t.Context()); err != nil || rep.Purged[retention.KindMessage] != 1 || f.stored(busy) || exists(busyFile) {
		t.Errorf("after its jobs finished: %+v, %v, still stored %v", rep, err, f.stored(busy))
	}
}

// TestPurgeNeedsJobs: when the queue cannot say which messages are in use,
// nothing is removed.
func TestPurgeNeedsJobs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.message(40*day, "default")
	file := f.file(f.outbox, string(id)+".default.json")
	if _, err := f.purger(errors.New("queue closed")).Purge(t.Context()); err == nil {
		t.Error("Purge succeeded without knowing the jobs")
	}
	if !f.stored(id) || !exists(file) {
		t.Error("a run that could not read the jobs removed something")
	}
}

func TestNewRefusesBadPolicy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	inUse := func(context.Context) (func(postern.MsgID) bool, error) { return nil, nil }
	for _, cfg := range []retention.Config{
		{InUse: inUse, Default: day},
		{Store: f.store, Default: day},
		{Store: f.store, InUse: inUse},
		{Store: f.store, InUse: inUse, Default: day, Routes: map[string]time.Duration{"a": 0}},
	} {
		if _, err := retention.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
