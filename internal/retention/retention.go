// Package retention bounds what local mode keeps: it purges a message's
// objects in the store and its webhook, relay and DSN outbox files once the
// retention of the routes it went to has passed and no job refers to it.
package retention

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/postern/postern/internal/postern"
)

// Kinds of purged things: the label values of postern_purged_total.
const (
	KindMessage       = "message"        // a message's objects in the store
	KindWebhookOutbox = "webhook_outbox" // a file a directory route wrote
	KindRelayOutbox   = "relay_outbox"   // a file a file relay route wrote
	KindDSNOutbox     = "dsn_outbox"     // a failure notice the file relay wrote
)

// Store is what retention needs of the local store (fsblob.Store): where
// an object's file is, to find the messages, and a durable Delete.
type Store interface {
	Path(key string) (string, error)
	Delete(ctx context.Context, key string) error
}

// Outbox is a directory of files named after message ids ("<id>.<rest>",
// as the directory route and the file relay write them). Other files,
// dotfiles (writes in progress) and subdirectories are never touched.
type Outbox struct {
	Kind string // one of the Kind constants
	Dir  string
	// Route names the route that writes here; its retention applies. ""
	// (the DSN outbox) means the default retention.
	Route string
}

// Config is a Purger's policy and parts.
type Config struct {
	Store Store
	// Default is the retention of routes without their own.
	Default time.Duration
	// Routes holds the routes that have a retention of their own.
	Routes   map[string]time.Duration
	Outboxes []Outbox
	// InUse reports which messages jobs still refer to (queued, in flight,
	// delayed or dead-lettered): their pipeline has not finished, so
	// nothing of theirs is purged, whatever their age. It is read once per
	// run, before anything is deleted.
	InUse func(ctx context.Context) (func(postern.MsgID) bool, error)
	// Purged counts what a run removed, by kind; nil counts nothing.
	Purged func(kind string, n int)
	// Forget, when set, is told each message whose objects a run removed,
	// so what keeps its own view of messages (the search index) drops it.
	Forget func(id postern.MsgID)
	Now    func() time.Time // nil: time.Now
	Log    *slog.Logger
}

// Purger purges on a schedule. It is idempotent: a run cut short (a crash,
// a failed delete) leaves what it did not remove for the next run.
//
// How long a message is kept: its receive time is the timestamp of its id
// (a ULID minted when DATA starts). A message that went to several routes
// is kept for the longest retention among them, so no route loses a message
// earlier than it asked. Its routes are read from the per-route records the
// stages leave beside it (package trace, and the relay's state); a message
// with none (parsed but routed nowhere, or its records lost) is kept for
// the longest retention configured anywhere. Outbox files are kept for the
// retention of the route that wrote them (the default for DSNs).
//
// The one race left: a replay (POST /v1/replay) of a message that a run
// has already judged expired can lose its objects while the replayed job
// waits; that job then fails and is dead-lettered, which is visible.
type Purger struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	min time.Duration // the shortest retention configured
	max time.Duration // the longest
}

// New returns a Purger; cfg.Store and cfg.InUse are required.
func New(cfg Config) (*Purger, error) {
	if cfg.Store == nil || cfg.InUse == nil {
		return nil, errors.New("retention: Store and InUse are required")
	}
	if cfg.Default <= 0 {
		return nil, fmt.Errorf("retention: default retention %s must be positive", cfg.Default)
	}
	p := &Purger{cfg: cfg, log: cfg.Log, now: cfg.Now, min: cfg.Default, max: cfg.Default}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	for r, d := range cfg.Routes {
		if d <= 0 {
			return nil, fmt.Errorf("retention: route %s: retention %s must be positive", r, d)
		}
		p.min, p.max = min(p.min, d), max(p.max, d)
	}
	return p, nil
}

// Report is what one run did.
type Report struct {
	Purged map[string]int // by kind
	InUse  int            // expired messages kept because a job refers to them
	Errors int            // things that could not be removed (retried next run)
}

// Run purges at once and then every interval until ctx ends. A panic in a
// run is logged and the next run goes ahead.
func (p *Purger) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		p.safePurge(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Purger) safePurge(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("retention run panicked", slog.String("stage", "retention"), slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
		}
	}()
	_, _ = p.Purge(ctx) // Purge logs its own outcome
}

// Purge runs once and logs one INFO line with the counts.
func (p *Purger) Purge(ctx context.Context) (Report, error) {
	start := time.Now()
	rep := Report{Purged: map[string]int{}}
	inUse, err := p.cfg.InUse(ctx)
	if err != nil {
		p.log.Warn("retention run skipped: cannot tell which messages jobs still refer to", slog.String("stage", "retention"), slog.String("error", err.Error()))
		return rep, fmt.Errorf("retention: jobs in use: %w", err)
	}
	now := p.now()
	err = p.purgeStore(ctx, now, inUse, &rep)
	for _, o := range p.cfg.Outboxes {
		err = errors.Join(err, p.purgeOutbox(ctx, now, o, inUse, &rep))
	}
	for kind, n := range rep.Purged {
		if p.cfg.Purged != nil && n > 0 {
			p.cfg.Purged(kind, n)
		}
	}
	attrs := []any{slog.String("stage", "retention"),
		slog.Int("messages", rep.Purged[KindMessage]), slog.Int("webhook_outbox", rep.Purged[KindWebhookOutbox]),
		slog.Int("relay_outbox", rep.Purged[KindRelayOutbox]), slog.Int("dsn_outbox", rep.Purged[KindDSNOutbox]),
		slog.Int("kept_in_use", rep.InUse), slog.Int("errors", rep.Errors), slog.Int64("latency_ms", time.Since(start).Milliseconds())}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	p.log.Info("retention run", attrs...)
	return rep, err
}

// keep is how long a message that went to routes is kept.
func (p *Purger) keep(routes []string) time.Duration {
	if len(routes) == 0 {
		return p.max
	}
	var d time.Duration
	for _, r := range routes {
		d = max(d, p.routeKeep(r))
	}
	return d
}

func (p *Purger) routeKeep(route string) time.Duration {
	if d, ok := p.cfg.Routes[route]; ok {
		return d
	}
	return p.cfg.Default
}

// purgeStore walks m/<shard>/<id>/ (postern.MsgID.Prefix) and removes the
// objects of every expired message no job refers to.
func (p *Purger) purgeStore(ctx context.Context, now time.Time, inUse func(postern.MsgID) bool, rep *Report) error {
	root, err := p.cfg.Store.Path("m")
	if err != nil {
		return fmt.Errorf("retention: store: %w", err)
	}
	shards, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("retention: list %s: %w", root, err)
	}
	var errs []error
	for _, shard := range shards {
		if !shard.IsDir() {
			continue
		}
		ids, err := os.ReadDir(filepath.Join(root, shard.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("retention: list shard %s: %w", shard.Name(), err))
			rep.Errors++
			continue
		}
		for _, d := range ids {
			if err := ctx.Err(); err != nil {
				return errors.Join(append(errs, err)...)
			}
			received, ok := receivedAt(d.Name())
			if !d.IsDir() || !ok || now.Sub(received) < p.min {
				continue // young under every retention: not worth reading
			}
			id := postern.MsgID(d.Name())
			keys, err := p.messageKeys(filepath.Join(root, shard.Name(), d.Name()), id)
			if err != nil {
				errs = append(errs, err)
				rep.Errors++
				continue
			}
			if now.Sub(received) < p.keep(routesOf(id, keys)) {
				continue
			}
			if inUse(id) {
				rep.InUse++
				continue
			}
			if err := p.deleteMessage(ctx, id, keys); err != nil {
				errs = append(errs, err)
				rep.Errors++
				continue
			}
			rep.Purged[KindMessage]++
			if p.cfg.Forget != nil {
				p.cfg.Forget(id)
			}
		}
	}
	return errors.Join(errs...)
}

// messageKeys lists the keys of a message's objects, the envelope first:
// once it is gone the message no longer reads as one (trace, replay), so a
// run cut short leaves no half-message that looks whole.
func (p *Purger) messageKeys(dir string, id postern.MsgID) ([]string, error) {
	var keys []string
	err := filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, name)
			if err != nil {
				return err
			}
			keys = append(keys, id.Prefix()+filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retention: list message %s: %w", id, err)
	}
	sort.SliceStable(keys, func(i, j int) bool { return keys[i] == id.EnvelopeKey() && keys[j] != id.EnvelopeKey() })
	return keys, nil
}

func (p *Purger) deleteMessage(ctx context.Context, id postern.MsgID, keys []string) error {
	for _, k := range keys {
		if err := p.cfg.Store.Delete(ctx, k); err != nil {
			return fmt.Errorf("retention: purge message %s: %w", id, err)
		}
	}
	return nil
}

// routesOf names the routes a message went to, from the records the
// stages keep beside it: trace/webhook-<route>.jsonl and
// trace/relay-<route>.jsonl (package trace) and relay-<route>.json (the
// relay's state, package relay). Route names hold no dots or slashes.
func routesOf(id postern.MsgID, keys []string) []string {
	var out []string
	for _, k := range keys {
		rel := strings.TrimPrefix(k, id.Prefix())
		var name string
		switch dir, file := path.Split(rel); {
		case dir == "trace/" && strings.HasSuffix(file, ".jsonl"):
			stage, route, ok := strings.Cut(strings.TrimSuffix(file, ".jsonl"), "-")
			if !ok || stage != "webhook" && stage != "relay" {
				continue
			}
			name = route
		case dir == "" && strings.HasPrefix(file, "relay-") && strings.HasSuffix(file, ".json"):
			name = strings.TrimSuffix(strings.TrimPrefix(file, "relay-"), ".json")
		default:
			continue
		}
		if name != "" {
			out = append(out, name)
		}
	}
	return out
}

// purgeOutbox removes the expired files of one outbox directory.
func (p *Purger) purgeOutbox(ctx context.Context, now time.Time, o Outbox, inUse func(postern.MsgID) bool, rep *Report) error {
	ents, err := os.ReadDir(o.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		rep.Errors++
		return fmt.Errorf("retention: list %s: %w", o.Dir, err)
	}
	keep := p.cfg.Default
	if o.Route != "" {
		keep = p.routeKeep(o.Route)
	}
	var errs []error
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || len(name) <= ulid.EncodedSize || name[ulid.EncodedSize] != '.' {
			continue
		}
		received, ok := receivedAt(name[:ulid.EncodedSize])
		if !ok || now.Sub(received) < keep {
			continue
		}
		if inUse(postern.MsgID(name[:ulid.EncodedSize])) {
			continue
		}
		if err := os.Remove(filepath.Join(o.Dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("retention: %w", err))
			rep.Errors++
			continue
		}
		rep.Purged[o.Kind]++
	}
	return errors.Join(errs...)
}

// receivedAt reads the receive time from a message id (its ULID's
// timestamp). Anything that is not a canonical id is not a message.
func receivedAt(s string) (time.Time, bool) {
	u, err := ulid.ParseStrict(s)
	if err != nil || u.String() != s {
		return time.Time{}, false
	}
	return ulid.Time(u.Time()), true
}
