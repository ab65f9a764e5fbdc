package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/ingest"
	"github.com/postern/postern/internal/queue/fsqueue"
	"github.com/postern/postern/internal/smtpd"
	"github.com/postern/postern/internal/spool"
)

// IngestOptions configure an IngestServer.
type IngestOptions struct {
	// DataDir is laid out as the gateway's data_dir (store/ and queue.db),
	// so the real gateway started on it later finds what was accepted.
	DataDir string
	Sync    fsblob.SyncMode
	// Spool makes the path the gateway's local one: messages go to the
	// spool log (acknowledged after its shared flush) and its mover puts
	// them into the store and queue. Sync and WrapStore are then unused.
	Spool bool
	// WrapStore and WrapQueue, when set, stand between ingest and the real
	// store and inbound queue: fault injection for tests.
	WrapStore func(blob.Store) blob.Store
	WrapQueue func(ingest.Sender) ingest.Sender
	// StoreTimeout is limits.store_timeout; default the gateway's.
	StoreTimeout time.Duration
	Log          *slog.Logger
}

// IngestServer is the gateway's front door and ingest path alone: the real
// smtpd and ingest packages over a real fsblob store and fsqueue queue, with
// no stage behind them and no policy beyond "loopback may send anything".
// It measures what the path from DATA to 250 costs: through the spool as the
// gateway runs it locally, or straight into the store and queue (as on AWS)
// with each of the store's sync modes.
type IngestServer struct {
	srv   *smtpd.Server
	store *fsblob.Store
	db    *fsqueue.DB
	spool *spool.Spool // nil unless IngestOptions.Spool
	mover *spool.Mover
	// Inbound is the queue ParseJobs go to.
	Inbound *fsqueue.Queue
}

// NewIngestServer opens the store and queue under opts.DataDir.
func NewIngestServer(opts IngestOptions) (*IngestServer, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	store, err := fsblob.New(filepath.Join(opts.DataDir, "store"), fsblob.Options{Sync: opts.Sync, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("loadgen: ingest server: %w", err)
	}
	db, err := fsqueue.Open(filepath.Join(opts.DataDir, "queue.db"), fsqueue.Options{})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("loadgen: ingest server: %w", err)
	}
	inbound, err := db.Queue(app.QueueInbound, fsqueue.Config{MaxReceives: 10, DeadLetter: app.QueueInbound + "-dlq"})
	if err != nil {
		db.Close()
		store.Close()
		return nil, fmt.Errorf("loadgen: ingest server: %w", err)
	}
	var bs blob.Store = store
	if opts.WrapStore != nil {
		bs = opts.WrapStore(bs)
	}
	var q ingest.Sender = inbound
	if opts.WrapQueue != nil {
		q = opts.WrapQueue(q)
	}
	lim := config.Default().Limits
	if opts.StoreTimeout > 0 {
		lim.StoreTimeout = config.Duration(opts.StoreTimeout)
	}
	var in smtpd.Ingester = ingest.New(bs, q, log)
	var sp *spool.Spool
	var mv *spool.Mover
	if opts.Spool {
		if sp, err = spool.Open(filepath.Join(opts.DataDir, "spool"), spool.Options{Logger: log, Complete: ingest.CompleteEnvelope}); err != nil {
			db.Close()
			store.Close()
			return nil, err
		}
		mv = spool.NewMover(sp, store, inbound, db)
		if err := mv.Replay(context.Background()); err != nil {
			sp.Close()
			db.Close()
			store.Close()
			return nil, err
		}
		mv.Start()
		in = ingest.NewSpooled(sp, log)
	}
	srv := smtpd.New(smtpd.Config{
		Hostname:        "ingest.bench.test",
		Listener:        "smtp",
		Mode:            smtpd.ModeSMTP,
		MaxMessageBytes: 64 << 20,
		MaxRecipients:   lim.MaxRecipients,
		MaxLineLength:   lim.MaxLineLength,
		CommandTimeout:  lim.CommandTimeout.D(),
		DataTimeout:     lim.DataTimeout.D(),
		StoreTimeout:    lim.StoreTimeout.D(),
		// Load comes from one address: the per-IP bound would refuse it.
		MaxSessions:      lim.MaxSessions,
		MaxSessionsPerIP: lim.MaxSessions,
		MaxAuthFailures:  lim.MaxAuthFailures,
		MaxHeaderBytes:   lim.MaxHeaderBytes,
		MaxReceived:      lim.MaxReceived,
	}, []smtpd.Identity{{
		Name:           "local",
		Networks:       []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		AllowPlaintext: true,
	}}, acceptAll{}, in, log)
	return &IngestServer{srv: srv, store: store, db: db, spool: sp, mover: mv, Inbound: inbound}, nil
}

// Serve accepts SMTP connections on l until Close.
func (s *IngestServer) Serve(l net.Listener) error { return s.srv.Serve(l) }

// Shutdown drains sessions (bounded by ctx) and closes the store and queue.
func (s *IngestServer) Shutdown(ctx context.Context) error {
	return errors.Join(s.srv.Shutdown(ctx), s.closeStorage())
}

// Close stops at once and closes the store and queue.
func (s *IngestServer) Close() error {
	return errors.Join(s.srv.Close(), s.closeStorage())
}

func (s *IngestServer) closeStorage() error {
	var err error
	if s.spool != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = errors.Join(s.mover.Stop(ctx), s.spool.Close())
	}
	return errors.Join(err, s.db.Close(), s.store.Close())
}

// acceptAll routes every recipient.
type acceptAll struct{}

func (acceptAll) Accepts(rcpt, sender, identity string) bool { return true }

var _ smtpd.Router = acceptAll{}
