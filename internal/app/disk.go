package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/diskspace"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/retention"
)

// retentionEvery is how often the local mode purges what its retention
// lets go (and once at start).
const retentionEvery = time.Hour

// Option adjusts New: a service manager to notify (WithNotifier), or a
// stand-in for what tests must control (WithFreeSpace).
type Option func(*options)

type options struct {
	freeSpace func(dir string) (uint64, error)
	notifier  Notifier
}

// WithFreeSpace measures data_dir's free space with f instead of statfs.
func WithFreeSpace(f func(dir string) (uint64, error)) Option {
	return func(o *options) { o.freeSpace = f }
}

// bindHousekeeping builds what keeps local mode's disk bounded and its
// state across restarts: the free-space guard behind limits.min_free_bytes,
// the retention purger, and the saved device table (loaded here). On AWS
// none applies: the gateway keeps no state of its own and no spool on its
// disk, and S3 lifecycle rules expire objects.
func (a *App) bindHousekeeping(opts []Option) error {
	var o options
	for _, f := range opts {
		f(&o)
	}
	a.notifier = o.notifier
	if !a.be.local {
		return nil
	}
	a.deviceState = &deviceState{store: a.store}
	if err := a.deviceState.load(context.Background(), a.devices); err != nil {
		// The table is advisory: start with what was loaded, if anything.
		a.log.Warn("device table not loaded", slog.String("stage", "gateway"), slog.String("error", err.Error()))
	}
	if a.cfg.Limits.MinFreeBytes > 0 {
		a.disk = diskspace.New(a.cfg.DataDir, uint64(a.cfg.Limits.MinFreeBytes), diskspace.Options{Free: o.freeSpace})
	}
	rc := retentionConfig(a.cfg, a.be, a.metrics.Purged(), a.log)
	rc.Forget = a.forgetIndexed
	p, err := retention.New(rc)
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	a.purger = p
	return nil
}

// retentionConfig maps the config onto the purger: each route's retention,
// the outbox directories the directory routes, file relays and the DSN
// file relay write, and the jobs that still refer to messages.
func retentionConfig(cfg *config.Config, be *backend, purged func(string, int), log *slog.Logger) retention.Config {
	rc := retention.Config{
		Store:   be.store.(retention.Store),
		Default: cfg.Retention.D(),
		Routes:  map[string]time.Duration{},
		Purged:  purged,
		Log:     log,
		InUse:   be.jobsInUse,
	}
	for _, r := range cfg.Routes {
		if r.Retention > 0 {
			rc.Routes[r.Name] = r.Retention.D()
		}
		switch {
		case r.Directory != nil:
			rc.Outboxes = append(rc.Outboxes, retention.Outbox{Kind: retention.KindWebhookOutbox, Dir: cfg.Path(r.Directory.Path), Route: r.Name})
		case r.Relay != nil && r.Relay.Type == "file":
			rc.Outboxes = append(rc.Outboxes, retention.Outbox{Kind: retention.KindRelayOutbox, Dir: cfg.Path(r.Relay.Path), Route: r.Name})
		}
	}
	if cfg.DSN.Relay.Type == "file" {
		rc.Outboxes = append(rc.Outboxes, retention.Outbox{Kind: retention.KindDSNOutbox, Dir: cfg.Path(cfg.DSN.Relay.Path)})
	}
	return rc
}

// jobsInUse reads every job in every local queue and dead-letter queue
// (one consistent read) and returns the messages they refer to.
func (b *backend) jobsInUse(ctx context.Context) (func(postern.MsgID) bool, error) {
	if b.scanJobs == nil {
		return nil, fmt.Errorf("no local queues to read")
	}
	ids := map[postern.MsgID]struct{}{}
	err := b.scanJobs(ctx, func(body []byte) error {
		var ref struct {
			ID postern.MsgID `json:"id"`
		}
		// Every job type names its message in "id"; a body that does not
		// decode refers to nothing retention could remove.
		if json.Unmarshal(body, &ref) == nil && ref.ID != "" {
			ids[ref.ID] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return func(id postern.MsgID) bool { _, ok := ids[id]; return ok }, nil
}

// storageLow is the gateway's StorageLow: nil (never) without a guard.
func (a *App) storageLow() func() bool {
	if a.disk == nil {
		return nil
	}
	return a.disk.Low
}

// diskReady is the /readyz check of free space.
func (a *App) diskReady() error {
	if a.disk == nil {
		return nil
	}
	return a.disk.Check()
}

// housekeep runs retention and keeps the device table on disk until ctx
// ends; wg tracks its goroutines.
func (a *App) housekeep(ctx context.Context, wg *sync.WaitGroup) {
	if a.purger != nil {
		wg.Go(func() { a.purger.Run(ctx, retentionEvery) })
	}
	if a.deviceState != nil {
		wg.Go(func() { a.keepDevices(ctx) })
	}
}

// keepDevices saves the device table every devicesEvery until ctx ends.
func (a *App) keepDevices(ctx context.Context) {
	t := time.NewTicker(devicesEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.saveDevices(10 * time.Second)
		}
	}
}

// saveDevices writes the device table if it changed, giving up after limit;
// a failure is logged (the table is advisory) and retried at the next save.
func (a *App) saveDevices(limit time.Duration) {
	if a.deviceState == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("saving devices panicked", slog.String("stage", "gateway"), slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if err := a.deviceState.save(ctx, a.devices); err != nil {
		a.log.Warn("device table not saved", slog.String("stage", "gateway"), slog.String("error", err.Error()))
	}
}
