package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/blob/s3blob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/ingest"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/metrics"
	"github.com/postern/postern/internal/queue"
	"github.com/postern/postern/internal/queue/fsqueue"
	"github.com/postern/postern/internal/queue/sqsqueue"
	"github.com/postern/postern/internal/smtpd"
	"github.com/postern/postern/internal/spool"
)

// backend is where messages and jobs live: a store and the four queues
// (and, locally, their dead-letter queues).
type backend struct {
	store  blob.Store
	queues map[string]queue.Queue
	local  bool
	ready  func(ctx context.Context) error
	stats  func(ctx context.Context) (map[string]metrics.QueueStats, error) // nil: not exported (SQS has CloudWatch)
	close  func() error
	// sqsQueue opens another SQS queue with the backend's client (aws only).
	sqsQueue func(url string) *sqsqueue.Queue
	urls     interface {
		URL(ctx context.Context, key string) (string, error)
	}
	// links signs the URLs of local payloads and checks them when the
	// admin listener serves them (admin_links.go); nil on AWS, whose
	// links are pre-signed S3 URLs, and without an admin listener.
	links *localLinks
	// ingester makes accepted messages durable: the spool locally, the
	// store and inbound queue directly on AWS.
	ingester smtpd.Ingester
	spool    *localSpool // local only
	// scanJobs reads the body of every job in every queue and dead-letter
	// queue in one consistent read (local only; see jobsInUse).
	scanJobs func(ctx context.Context, fn func(body []byte) error) error
}

func openBackend(ctx context.Context, cfg *config.Config, log *slog.Logger) (*backend, error) {
	if cfg.Backend.Type == "aws" {
		return openAWS(ctx, cfg, log)
	}
	return openLocal(ctx, cfg, log)
}

func openLocal(ctx context.Context, cfg *config.Config, log *slog.Logger) (b *backend, err error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	store, err := fsblob.New(cfg.Path("store"), fsblob.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db, err := fsqueue.Open(cfg.Path("queue.db"), fsqueue.Options{})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("open queue: %w", err)
	}
	links, err := newLocalLinks(cfg, log)
	if err != nil {
		db.Close()
		store.Close()
		return nil, err
	}
	b = &backend{store: store, queues: map[string]queue.Queue{}, local: true, links: links}
	if links != nil {
		b.urls = links // never a typed nil: payloads without links carry keys only
	}
	var stopSpool func() error
	b.close = func() error {
		var err error
		if stopSpool != nil {
			err = stopSpool()
		}
		return errors.Join(err, db.Close(), store.Close())
	}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	var inbound *fsqueue.Queue
	for _, q := range []struct {
		name        string
		maxReceives int
	}{
		// Webhook and relay retry until their route's max age, not a count;
		// the count only catches a job that crashes its handler every time.
		{QueueInbound, 10}, {QueueWebhook, 1000}, {QueueRelay, 1000}, {QueueDSN, 20},
	} {
		dlq, err := db.Queue(q.name+"-dlq", fsqueue.Config{})
		if err != nil {
			return nil, err
		}
		b.queues[q.name+"-dlq"] = dlq
		qq, err := db.Queue(q.name, fsqueue.Config{MaxReceives: q.maxReceives, DeadLetter: q.name + "-dlq"})
		if err != nil {
			return nil, err
		}
		b.queues[q.name] = qq
		if q.name == QueueInbound {
			inbound = qq
		}
		// Jobs in flight belonged to consumers of a process that is gone
		// (the queue file is locked to one process).
		n, err := qq.ReleaseInFlight(ctx)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			log.Info("released jobs in flight at the last stop", slog.String("queue", q.name), slog.Int("jobs", n))
		}
	}
	b.scanJobs = func(ctx context.Context, fn func(body []byte) error) error {
		names := make([]string, 0, len(b.queues))
		for name := range b.queues {
			names = append(names, name)
		}
		return db.Scan(ctx, names, func(_ string, body []byte) error { return fn(body) })
	}
	sp, err := openSpool(ctx, cfg, log, store, inbound, db)
	if err != nil {
		return nil, err
	}
	stopSpool = sp.stop
	b.spool = sp
	b.ingester = ingest.NewSpooled(sp.spool, log)

	// Locally the failure that matters is a full or broken disk, which only
	// a write shows; a tiny object rewritten per check is cheap here (on S3
	// a Stat is enough and costs less).
	b.ready = func(ctx context.Context) error {
		if err := store.Put(ctx, "health/readyz", strings.NewReader("ok"), nil); err != nil {
			return errors.New("store unavailable")
		}
		if _, err := inbound.Stats(ctx); err != nil {
			return errors.New("queue unavailable")
		}
		return nil // the spool: see localSpool.ready
	}
	b.stats = func(ctx context.Context) (map[string]metrics.QueueStats, error) {
		out := map[string]metrics.QueueStats{}
		for name, q := range b.queues {
			s, err := q.(*fsqueue.Queue).Stats(ctx)
			if err != nil {
				return nil, err
			}
			out[name] = metrics.QueueStats{Visible: s.Visible, InFlight: s.InFlight, Delayed: s.Delayed, OldestAge: s.OldestAge}
		}
		return out, nil
	}
	return b, nil
}

// localSpool is the gateway's write-ahead log and the mover that empties
// it into the store and the inbound queue.
type localSpool struct {
	spool *spool.Spool
	mover *spool.Mover
}

// openSpool opens the spool under data_dir and moves what an earlier run
// left in it before any stage can read the queue.
func openSpool(ctx context.Context, cfg *config.Config, log *slog.Logger, store *fsblob.Store, inbound *fsqueue.Queue, db *fsqueue.DB) (*localSpool, error) {
	sp, err := spool.Open(cfg.Path("spool"), spool.Options{Logger: log, QuarantineDir: cfg.Path("quarantine"), Complete: ingest.CompleteEnvelope})
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	var target spool.Store = store
	if err := store.SyncAll(); err != nil {
		// No syncfs here: every object the mover puts is flushed itself.
		target = syncedStore{store}
	}
	mv := spool.NewMover(sp, target, inbound, db)
	if err := mv.Replay(ctx); err != nil {
		sp.Close()
		return nil, fmt.Errorf("spool: replay what the last run accepted: %w", err)
	}
	mv.Start()
	return &localSpool{spool: sp, mover: mv}, nil
}

// ready reports why the spool cannot take mail or its mover has been stuck
// for longer than alarm (see Mover.Stalled). A nil spool (AWS) is ready.
func (l *localSpool) ready(alarm time.Duration) error {
	if l == nil {
		return nil
	}
	if l.spool.Err() != nil {
		return errors.New("spool cannot write")
	}
	return l.mover.Stalled(alarm)
}

// stats is the spool's state for metrics.
func (l *localSpool) stats() metrics.SpoolStats {
	s := l.mover.Stats()
	return metrics.SpoolStats{BacklogMessages: s.BacklogMessages, BacklogBytes: s.BacklogBytes,
		OldestUnmoved: s.OldestUnmoved, MoverFailures: s.MoverFailures, Quarantined: s.Quarantined}
}

// stop moves what the spool holds into the store and queue (bounded; the
// rest is replayed at the next start) and closes it.
func (l *localSpool) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.mover.Stop(ctx); err != nil {
		return err
	}
	return l.spool.Close()
}

// syncedStore puts every object durably, for platforms without syncfs.
type syncedStore struct{ s *fsblob.Store }

func (s syncedStore) PutUnsynced(ctx context.Context, key string, r io.Reader) error {
	return s.s.Put(ctx, key, r, nil)
}
func (s syncedStore) CreateUnsynced(ctx context.Context, key string, r io.Reader) error {
	return s.s.Put(ctx, key, r, nil)
}
func (s syncedStore) SyncAll() error { return nil }

// readiness checks that the store answers (a missing key is an answer) and
// that the inbound queue does.
func readiness(store blob.Store, queueStats func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		if _, err := store.Stat(ctx, "readyz-probe"); err != nil && !errors.Is(err, blob.ErrNotFound) {
			return errors.New("store unavailable")
		}
		if err := queueStats(ctx); err != nil {
			return errors.New("queue unavailable")
		}
		return nil
	}
}

// newS3Store is the aws backend's store.
func newS3Store(ctx context.Context, a config.AWS) (*s3blob.Store, error) {
	return lambdafn.NewS3Store(ctx, a)
}

// redriveLocal moves the dead-lettered jobs of a local queue back onto it.
func redriveLocal(ctx context.Context, queues map[string]queue.Queue, name string) (int, error) {
	q, ok := queues[name].(*fsqueue.Queue)
	dlq, ok2 := queues[name+"-dlq"].(*fsqueue.Queue)
	if !ok || !ok2 {
		return 0, fmt.Errorf("no local queue %q with a dead-letter queue (queues: inbound, webhook, relay, dsn)", name)
	}
	return dlq.Redrive(ctx, q)
}

func openAWS(ctx context.Context, cfg *config.Config, log *slog.Logger) (*backend, error) {
	aws, err := lambdafn.OpenAWS(ctx, cfg.Backend.AWS, log)
	if err != nil {
		return nil, err
	}
	b := &backend{store: aws.Store, queues: aws.Queues(), urls: aws.Store, close: func() error { return nil }, sqsQueue: aws.Queue}
	inbound := aws.SQS[QueueInbound]
	b.ready = readiness(aws.Store, func(ctx context.Context) error { _, err := inbound.Stats(ctx); return err })
	return b, nil
}
