package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/msgindex"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/route"
	"github.com/postern/postern/internal/smtpd"
	"github.com/postern/postern/internal/trace"
)

// IndexFile is the message index's file under data_dir, beside queue.db.
const IndexFile = "index.db"

// openIndex opens local mode's message index and registers its metrics.
// The index is a view for the console, never in the way of mail: when it
// cannot be opened the gateway runs without it (logged at ERROR; the
// messages API says why) rather than refuse to start.
//
// The router and Hold it is given read a.routes and a.servers: both are
// set in New, before Run starts anything that feeds the index.
func (a *App) openIndex() {
	if !a.be.local {
		return
	}
	idx, err := msgindex.Open(a.cfg.Path(IndexFile), msgindex.Options{
		Store: a.store, Router: indexRouter(a.routes), Log: a.log,
		// The index's writes wait for SMTP bursts as the stages' jobs do.
		Hold: a.yieldToUploads,
	})
	if err != nil {
		a.indexErr = err
		a.log.Error("message index not opened; mail flows, the messages API is unavailable", slog.String("stage", "index"), slog.String("error", err.Error()))
		return
	}
	if idx.Unclean() {
		a.repairIndex(idx)
	}
	if idx.Created() && storeHasMessages(a.store) {
		idx.MarkIncomplete(fmt.Sprintf("the index was created on %s beside a store that already held messages: run gateway reindex (with the gateway stopped) to add them", time.Now().UTC().Format(time.RFC3339)))
	}
	a.index = idx
	a.metrics.CounterFunc("postern_index_dropped_total", "Updates of the message index lost (backlog full, or a batch that could not be written); the index says it is incomplete until gateway reindex.", func() float64 { return float64(idx.Dropped()) })
	a.metrics.CounterFunc("postern_index_write_failures_total", "Batches the message index could not write.", func() float64 { return float64(idx.Failures()) })
	a.metrics.GaugeFunc("postern_index_backlog", "Updates waiting for the message index's writer.", func() float64 { return float64(idx.Backlog()) })
}

// repairLimit bounds the messages a repair at start reads; beyond it the
// index stays incomplete until gateway reindex.
const repairLimit = 20000

// repairIndex rebuilds, after a crash or kill -9, the rows the lost
// updates can have touched (msgindex.Index.Repair). It runs in New, before
// anything feeds the index; when it cannot, the index says it is
// incomplete and the gateway starts all the same.
func (a *App) repairIndex(idx *msgindex.Index) {
	archive, ok := a.store.(msgindex.Archive)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	n, err := idx.Repair(ctx, archive, a.routes.Names(), repairLimit)
	if err != nil {
		a.log.Warn("message index not repaired after an unclean stop; run gateway reindex with the gateway stopped", slog.String("stage", "index"), slog.String("error", err.Error()))
		return
	}
	a.log.Info("message index repaired after an unclean stop", slog.String("stage", "index"), slog.Int("messages", n), slog.Int64("latency_ms", time.Since(start).Milliseconds()))
}

// indexTee is what the stages' tracer hands events to: the index, or
// nothing.
func (a *App) indexTee() trace.Tee {
	if a.index == nil {
		return nil
	}
	return a.index.Events
}

// indexAccepted makes in tell the index of every message it accepts.
func (a *App) indexAccepted(in smtpd.Ingester) smtpd.Ingester {
	if a.index == nil {
		return in
	}
	return indexedIngester{in, a.index}
}

// forgetIndexed is retention's Forget: a purged message leaves the index.
func (a *App) forgetIndexed(id postern.MsgID) {
	if a.index != nil {
		a.index.Forget(id)
	}
}

// closeIndex writes what the index has queued and closes it; before the
// store closes, since the writer may still read parsed forms. a.index
// stays set (a job or retention run left behind by shutdown may still
// feed it; the closed index drops the update), and closing twice is safe.
func (a *App) closeIndex() error {
	if a.index == nil {
		return nil
	}
	return a.index.Close()
}

type indexedIngester struct {
	smtpd.Ingester
	idx *msgindex.Index
}

func (i indexedIngester) Accept(ctx context.Context, env *postern.Envelope, body io.Reader) error {
	if err := i.Ingester.Accept(ctx, env, body); err != nil {
		return err
	}
	i.idx.Accepted(env)
	return nil
}

// indexRouter names each recipient's route as the parse stage does: the
// table's first match on recipient, sender, identity, the parsed header
// and the sender-authentication verdicts kept in parsed.json.
func indexRouter(table *route.Table) msgindex.Router {
	if table == nil {
		return nil
	}
	return func(env *postern.Envelope, p *msgindex.Parsed) []msgindex.Assignment {
		lookup := route.FieldLookup(p.Headers)
		verdicts := route.VerdictsOf(p.Auth)
		out := make([]msgindex.Assignment, 0, len(env.Recipients))
		for _, r := range env.RecipientAddrs() {
			a := msgindex.Assignment{Recipient: r}
			if m, ok := table.Match(route.Meta{Recipient: r, Sender: env.Sender, Identity: env.Identity, Header: lookup, Auth: verdicts}); ok {
				a.Route, a.Reject = m.Name, m.Target.Kind == route.KindReject
			}
			out = append(out, a)
		}
		return out
	}
}

// storeHasMessages reports whether the local store holds any message.
func storeHasMessages(st blob.Store) bool {
	a, ok := st.(msgindex.Archive)
	if !ok {
		return false
	}
	root, err := a.Path("m")
	if err != nil {
		return false
	}
	ents, err := os.ReadDir(root)
	return err == nil && len(ents) > 0
}

// Reindex rebuilds local mode's message index from the store: every
// message's envelope, parsed form and trace events. It runs with the
// gateway stopped: the running gateway holds the index file (as it holds
// queue.db), and a rebuild beside its live updates could overwrite them.
func Reindex(ctx context.Context, cfg *config.Config, log *slog.Logger) (msgindex.Report, error) {
	if cfg.Backend.Type == "aws" {
		return msgindex.Report{}, errors.New("on AWS there is no message index: the admin API answers a message by id from S3 and the functions' logs; searching needs local mode")
	}
	table, err := lambdafn.RouteTable(cfg)
	if err != nil {
		return msgindex.Report{}, err
	}
	st, closeStore, err := openStore(ctx, cfg, log)
	if err != nil {
		return msgindex.Report{}, err
	}
	defer closeStore()
	archive, ok := st.(msgindex.Archive)
	if !ok {
		return msgindex.Report{}, fmt.Errorf("store %T cannot be walked", st)
	}
	idx, err := msgindex.Open(cfg.Path(IndexFile), msgindex.Options{Store: st, Router: indexRouter(table), Log: log, LockTimeout: time.Second})
	if err != nil {
		return msgindex.Report{}, fmt.Errorf("%w (stop the gateway first: it keeps the index open while it runs)", err)
	}
	rep, err := idx.Rebuild(ctx, archive, table.Names())
	return rep, errors.Join(err, idx.Close())
}
