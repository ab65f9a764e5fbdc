// Package app wires Postern together from a config: which store, which
// queues, which stages, which listeners. It is the only place that knows
// every adapter; mains and end-to-end tests call it.
package app

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/console"
	"github.com/postern/postern/internal/diskspace"
	"github.com/postern/postern/internal/ingest"
	"github.com/postern/postern/internal/lambdafn/parsefn"
	"github.com/postern/postern/internal/metrics"
	"github.com/postern/postern/internal/msgindex"
	"github.com/postern/postern/internal/parse"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/retention"
	"github.com/postern/postern/internal/route"
	"github.com/postern/postern/internal/smtpd"
	"github.com/postern/postern/internal/tlsconf"
	"github.com/postern/postern/internal/trace"
	"github.com/postern/postern/internal/version"
	"github.com/postern/postern/internal/webhook"
	"github.com/postern/postern/internal/worker"
)

// Queue names. Each has a dead-letter queue named <name>-dlq.
const (
	QueueInbound = "inbound"
	QueueWebhook = "webhook"
	QueueRelay   = "relay"
	QueueDSN     = "dsn"
)

// App is a running local-mode Postern: gateway, store, queues and stages.
type App struct {
	cfg *config.Config
	log *slog.Logger

	be    *backend
	store blob.Store
	q     map[string]queue.Queue

	servers    []*smtpd.Server
	listeners  []net.Listener
	admin      *http.Server
	adminLn    net.Listener
	workers    []*worker.Worker
	tls        *tlsconf.Manager
	metrics    *metrics.Metrics
	devices    *devices
	routes     *route.Table
	adminToken string
	console    *console.Console // the web console's sessions; set by mountConsole
	draining   atomic.Bool

	// Local mode's housekeeping (disk.go); nil on AWS or when turned off.
	disk        *diskspace.Guard
	purger      *retention.Purger
	deviceState *deviceState
	// The message index (msgindex.go); nil on AWS or when it did not open
	// (indexErr says why).
	index    *msgindex.Index
	indexErr error

	notifier Notifier // told when serving starts and when the drain begins; may be nil
}

// New opens the store and queues under cfg.DataDir, builds every stage and
// binds every listener, so that a configuration or port problem surfaces
// before Run. Close releases what New opened if Run is never called.
func New(cfg *config.Config, log *slog.Logger, opts ...Option) (_ *App, err error) {
	a := &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.Close() // a, not the nil result: release what was opened
		}
	}()
	a.be, err = openBackend(context.Background(), cfg, log)
	if err != nil {
		return nil, err
	}
	a.store, a.q = a.be.store, a.be.queues
	a.metrics = metrics.New()
	a.devices = newDevices()
	if err := a.bindHousekeeping(opts); err != nil {
		return nil, err
	}
	if err := a.loadAdminToken(); err != nil {
		return nil, err
	}
	if a.be.stats != nil {
		a.metrics.Queues(a.be.stats)
	}

	st, err := buildStages(cfg, a.be, log, "")
	if err != nil {
		return nil, err
	}
	a.routes = st.table
	a.openIndex()
	// Locally every stage runs in-process; on AWS they are Lambda functions.
	if a.be.local {
		st.relay = st.relay.With(relay.WithObserver(a.metrics.Relay()))
		st.webhook = st.webhook.With(webhook.WithObserver(a.metrics.Webhook()))
		if a.index != nil {
			// The index takes subject, attachments and routes from the
			// stage itself, not from a decode of parsed.json.
			st.parse = st.parse.With(parse.OnParsed(a.index.Parsed))
		}
		for _, w := range []*worker.Worker{
			{Stage: "parse", Queue: a.q[QueueInbound], Handler: st.parse, DeadLetter: a.q[QueueInbound+"-dlq"]},
			{Stage: "webhook", Queue: a.q[QueueWebhook], Handler: st.webhook, DeadLetter: a.q[QueueWebhook+"-dlq"]},
			{Stage: "relay", Queue: a.q[QueueRelay], Handler: st.relay, DeadLetter: a.q[QueueRelay+"-dlq"]},
			{Stage: "dsn", Queue: a.q[QueueDSN], Handler: st.dsn, DeadLetter: a.q[QueueDSN+"-dlq"]},
		} {
			w.Handler = trace.WrapTee(w.Stage, w.Handler, a.store, log, a.indexTee())
			w.Log = log
			w.Concurrency = cfg.Delivery.Workers
			w.Observe = a.metrics.Job
			w.Yield = a.yieldToUploads
			a.workers = append(a.workers, w)
		}
	}

	if !cfg.TLS.Disable {
		a.tls, err = tlsconf.New(tlsconf.Options{
			CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, MinVersion: cfg.TLS.MinVersion,
			Hostname: cfg.Hostname, SelfSignedDir: cfg.Path("tls"), Log: log,
		})
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	authFails := smtpd.NewAuthFailures(cfg.Limits.MaxAuthFailures, cfg.Limits.AuthFailureWindow.D())
	var inOpts []ingest.Option
	if cfg.Backend.Type == "aws" {
		// Small messages ride in their parse job: one SQS send before 250.
		inOpts = append(inOpts, ingest.InlineUpTo(postern.MaxInlineRaw))
	}
	var in smtpd.Ingester = ingest.New(a.store, a.q[QueueInbound], log, inOpts...)
	if a.be.ingester != nil {
		in = a.be.ingester
	}
	in = a.indexAccepted(in)
	// Listeners that refuse DMARC failures at the end of DATA share one
	// resolver, made only when some listener does.
	var dmarc *smtpd.DMARCReject
	for _, l := range cfg.Listeners {
		if l.DMARCReject && dmarc == nil {
			r, err := parsefn.Resolver(cfg)
			if err != nil {
				return nil, err
			}
			dmarc = &smtpd.DMARCReject{Resolver: r}
		}
	}
	for _, l := range cfg.Listeners {
		var reject *smtpd.DMARCReject
		if l.DMARCReject {
			reject = dmarc
		}
		var proxies []netip.Prefix
		for _, n := range l.ProxyProtocol {
			p, err := netip.ParsePrefix(n)
			if err != nil {
				return nil, fmt.Errorf("listeners %s proxy_protocol: %w", l.Name, err)
			}
			proxies = append(proxies, p.Masked())
		}
		var tcfg *tls.Config
		if a.tls != nil {
			if tcfg, err = a.tls.Config(l.TLSMinVersion); err != nil {
				return nil, fmt.Errorf("listeners %s: %w", l.Name, err)
			}
		}
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			return nil, fmt.Errorf("listeners %s: listen on %s: %w", l.Name, l.Addr, err)
		}
		a.listeners = append(a.listeners, ln)
		a.servers = append(a.servers, smtpd.New(smtpd.Config{
			Hostname:        cfg.Hostname,
			Listener:        l.Name,
			Mode:            smtpd.Mode(cmp.Or(l.Mode, "smtp")),
			TLS:             tcfg,
			MaxMessageBytes: cfg.Limits.MaxMessageBytes,
			MaxRecipients:   cfg.Limits.MaxRecipients,
			MaxLineLength:   cfg.Limits.MaxLineLength,
			CommandTimeout:  cfg.Limits.CommandTimeout.D(),
			DataTimeout:     cfg.Limits.DataTimeout.D(),
			StoreTimeout:    cfg.Limits.StoreTimeout.D(),

			MaxSessions:      cfg.Limits.MaxSessions,
			MaxSessionsPerIP: cfg.Limits.MaxSessionsPerIP,
			MaxAuthFailures:  cfg.Limits.MaxAuthFailures,
			AuthFailures:     authFails,
			MaxHeaderBytes:   cfg.Limits.MaxHeaderBytes,
			MaxReceived:      cfg.Limits.MaxReceived,
			ProxyTrusted:     proxies,
			Observer:         observers{a.metrics, a.devices},
			StorageLow:       a.storageLow(),
			DMARCReject:      reject,
		}, st.identities, st.table, in, log))
	}
	if a.be.spool != nil {
		a.be.spool.mover.HoldWhile(a.uploading, cfg.Delivery.BurstLag.D())
		a.metrics.Spool(a.be.spool.stats)
	}
	a.metrics.GaugeFunc("postern_smtp_sessions_in_flight", "Open SMTP sessions.", func() float64 {
		n := 0
		for _, s := range a.servers {
			n += s.Sessions()
		}
		return float64(n)
	})
	if cfg.Admin.Addr != "" {
		a.adminLn, err = net.Listen("tcp", cfg.Admin.Addr)
		if err != nil {
			return nil, fmt.Errorf("admin.addr: listen on %s: %w", cfg.Admin.Addr, err)
		}
		a.admin = &http.Server{Handler: a.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	}
	return a, nil
}

// yieldToUploads holds a stage's job back while SMTP clients are uploading,
// until the job is delivery.burst_lag old: on one machine the stages and
// the front door share the CPUs, and a burst is acknowledged faster when
// parsing and delivery wait for it to pass. Under sustained load every job
// reaches that age and runs; nothing waits longer.
func (a *App) yieldToUploads(ctx context.Context, queuedAt time.Time) {
	lag := a.cfg.Delivery.BurstLag.D()
	for lag > 0 && a.uploading() {
		left := lag - time.Since(queuedAt)
		if left <= 0 {
			return
		}
		t := time.NewTimer(min(left, 10*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// uploading reports whether clients are sending mail: a message is being
// received, or one began in the last 100 ms. (Sessions sharing a flush are
// answered together and all send their next MAIL and RCPT at once, so "none
// in DATA right now" happens after every flush even under full load.)
func (a *App) uploading() bool {
	for _, s := range a.servers {
		n, last := s.Uploads()
		if n > 0 || time.Since(last) < 100*time.Millisecond {
			return true
		}
	}
	return false
}

// SMTPAddrs returns the bound SMTP addresses, in listener order.
func (a *App) SMTPAddrs() []net.Addr {
	out := make([]net.Addr, len(a.listeners))
	for i, l := range a.listeners {
		out[i] = l.Addr()
	}
	return out
}

// startedAttrs are the startup log's fields: each listener's bound
// address as host:port under its name (a net.Addr would log as a Go struct,
// and port 0 in the config says nothing), and the admin address, so an
// operator can copy them into a client.
func (a *App) startedAttrs() []any {
	smtp := make(map[string]string, len(a.listeners))
	for i, l := range a.listeners {
		smtp[a.cfg.Listeners[i].Name] = l.Addr().String()
	}
	attrs := []any{slog.String("stage", "gateway"), slog.Any("smtp", smtp)}
	if ad := a.AdminAddr(); ad != nil {
		attrs = append(attrs, slog.String("admin", ad.String()))
	}
	attrs = append(attrs, slog.String("data_dir", a.cfg.DataDir))
	return append(attrs, version.Attrs()...)
}

// AdminAddr returns the bound admin address, or nil.
func (a *App) AdminAddr() net.Addr {
	if a.adminLn == nil {
		return nil
	}
	return a.adminLn.Addr()
}

// Run serves until ctx ends, then drains: every listener stops taking mail
// at once (new clients get 421 4.3.2), sessions in DATA and stage jobs in
// hand may finish until grace is over, then what is left is cut off (the
// client retries, the job runs again) and everything is closed. Run returns
// within grace and a few seconds whatever clients and handlers do.
func (a *App) Run(ctx context.Context, grace time.Duration) error {
	errc := make(chan error, len(a.servers)+1)
	for i, s := range a.servers {
		go func() {
			if err := s.Serve(a.listeners[i]); err != nil && !errors.Is(err, net.ErrClosed) {
				errc <- fmt.Errorf("smtp %s: %w", a.cfg.Listeners[i].Name, err)
			}
		}()
	}
	if a.admin != nil {
		go func() {
			if err := a.admin.Serve(a.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("admin: %w", err)
			}
		}()
	}
	wctx, stopWorkers := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, w := range a.workers {
		w.Grace = grace
		wg.Go(func() { w.Run(wctx) })
	}
	a.housekeep(wctx, &wg)
	a.log.Info("postern started", a.startedAttrs()...)
	a.notifyReady()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	start := time.Now()
	a.draining.Store(true)
	a.notifyStopping()
	for _, s := range a.servers {
		s.Drain() // all at once, before any of them waits
	}
	a.log.Info("shutting down", slog.String("stage", "gateway"), slog.Int64("grace_ms", grace.Milliseconds()))
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	stopWorkers() // jobs in hand have grace too (Worker.Grace)
	// Sessions and stage jobs wind down side by side, both bounded by the
	// grace plus a couple of seconds, so the whole shutdown stays within
	// grace + 5 s.
	jobsDone := make(chan bool, 1)
	go func() { jobsDone <- waitUntil(sctx, &wg, stragglerWait) }()
	var drains sync.WaitGroup
	for _, s := range a.servers {
		drains.Go(func() { s.WaitDrained(sctx) }) // bounded by sctx and a little more
	}
	drains.Wait()
	for _, s := range a.servers {
		s.Close() // every listener answered 421 until now
	}
	if !<-jobsDone {
		a.log.Warn("stage jobs still running after the grace; leaving them", slog.String("stage", "gateway"))
	}
	a.saveDevices(time.Second)
	if a.admin != nil {
		actx, cancel := context.WithTimeout(context.Background(), time.Second)
		if a.admin.Shutdown(actx) != nil {
			a.admin.Close()
		}
		cancel()
	}
	err := errors.Join(runErr, a.Close())
	a.log.Info("gateway stopped", slog.String("stage", "gateway"), slog.Int64("took_ms", time.Since(start).Milliseconds()))
	return err
}

// stragglerWait is how long shutdown waits, after the grace, for stage jobs
// that were cut off to return.
const stragglerWait = 2 * time.Second

// waitUntil waits for wg until ctx has been over for extra, and reports
// whether wg finished.
func waitUntil(ctx context.Context, wg *sync.WaitGroup, extra time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
	}
	t := time.NewTimer(extra)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// listenersAccepting reports the listeners whose accepts have been failing
// for a while (they are retried; see smtpd.Server.Accepting).
func (a *App) listenersAccepting() error {
	var errs []error
	for _, s := range a.servers {
		if err := s.Accepting(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ReloadTLS re-reads the certificate files (on SIGHUP). A failure keeps
// the current certificate.
func (a *App) ReloadTLS() error {
	if a.tls == nil {
		return nil
	}
	return a.tls.Reload()
}

// Close releases the store and queues. Run calls it on the way out.
func (a *App) Close() error {
	var errs []error
	for _, l := range a.listeners {
		l.Close()
	}
	if a.adminLn != nil {
		a.adminLn.Close()
	}
	errs = append(errs, a.closeIndex())
	if a.be != nil {
		errs = append(errs, a.be.close())
		a.be = nil
	}
	return errors.Join(errs...)
}
