// Package webhook is the webhook delivery stage: it POSTs a routed message to
// an application, signed per Standard Webhooks, and turns a final failure into a DSN.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

// Sender enqueues a job body on the dsn queue. queue.Queue satisfies it.
type Sender interface {
	Send(ctx context.Context, body []byte, delay time.Duration) (string, error)
}

// Handler delivers postern.WebhookJob jobs. It keeps no state between jobs,
// so one Handler serves concurrent calls.
type Handler struct {
	store   blob.Store
	targets Targets
	client  *http.Client    // given to New: used for every target
	guarded *guardedClients // without a client given: one per address policy
	dsn     Sender
	log     *slog.Logger
	now     func() time.Time
	urls    URLs
	obs     Observer

	backoffBase, backoffMax time.Duration
}

// Retry delays when the receiver gives no Retry-After: exponential with
// jitter from DefaultBackoffBase, capped at DefaultBackoffMax, and never
// past the route's max age.
const (
	DefaultBackoffBase = 5 * time.Second
	DefaultBackoffMax  = 15 * time.Minute
)

var _ postern.Handler = (*Handler)(nil)

// Option changes a Handler built by New.
type Option func(*Handler)

// WithClock replaces time.Now, for tests of timestamps and max age.
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// WithObserver reports each attempt's outcome to o (metrics); nil reports
// nowhere.
func WithObserver(o Observer) Option {
	return func(h *Handler) {
		h.obs = o
		if o == nil {
			h.obs = noObserver{}
		}
	}
}

// WithBackoff sets the retry delay: exponential from base, capped at max,
// with jitter. Zero values keep DefaultBackoffBase and DefaultBackoffMax.
func WithBackoff(base, max time.Duration) Option {
	return func(h *Handler) {
		if base > 0 {
			h.backoffBase = base
		}
		if max > 0 {
			h.backoffMax = max
		}
	}
}

// WithURLs makes the payload carry links for stored attachments and the raw
// message besides their keys. Without it the payload has keys only.
func WithURLs(u URLs) Option { return func(h *Handler) { h.urls = u } }

// New builds the webhook stage. store holds the parsed and raw messages,
// targets resolves route names, dsn is the dsn queue; a nil log discards.
//
// A nil client is the normal case: the Handler then makes guarded clients
// (package egress), one per address policy (each target's AllowPrivate and
// Allow). None follows redirects: a webhook URL that redirects is a failed
// attempt, not silently re-aimed. A non-nil client is used as given for
// every target, and its owner decides where it may connect; AllowPrivate
// and Allow then have no effect.
func New(store blob.Store, targets Targets, client *http.Client, dsn Sender, log *slog.Logger, opts ...Option) *Handler {
	var guarded *guardedClients
	if client == nil {
		guarded = &guardedClients{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{store: store, targets: targets, client: client, guarded: guarded, dsn: dsn, log: log, now: time.Now,
		obs: noObserver{}, backoffBase: DefaultBackoffBase, backoffMax: DefaultBackoffMax}
	for _, o := range opts {
		o(h)
	}
	return h
}

// With returns a copy of h with opts applied, for a caller that adds to a
// Handler built elsewhere (the metrics of the one-machine process); h is
// unchanged.
func (h *Handler) With(opts ...Option) *Handler {
	c := *h
	for _, o := range opts {
		o(&c)
	}
	return &c
}

// clientFor returns the client whose address policy fits t.
func (h *Handler) clientFor(t Target) *http.Client {
	if h.guarded != nil {
		return h.guarded.get(t.egressPolicy())
	}
	return h.client
}

// Handle makes one delivery attempt. It returns nil when the message was
// delivered, or when it failed for good and the DSN is queued; a temporary
// error (with RetryAfter when the receiver asked) to be tried again; and a
// permanent error only for a job that can never be delivered (malformed, or
// its route removed), which the queue dead-letters.
func (h *Handler) Handle(ctx context.Context, job postern.Job) error {
	wj, err := decodeJob(job.Body)
	if err != nil {
		return err
	}
	t, ok := h.targets(wj.Route)
	if !ok {
		return postern.Permanent(fmt.Errorf("webhook %s: route %q is not configured", wj.ID, wj.Route))
	}
	t = t.withDefaults()
	if t.Payload != PayloadJSON && t.Payload != PayloadRaw {
		return postern.Permanent(fmt.Errorf("webhook %s: route %q: payload %q is not json or raw", wj.ID, wj.Route, t.Payload))
	}

	d := &delivery{job: wj, target: t, attempt: job.Attempt, webhookID: postern.WebhookDeliveryID(wj.ID, wj.Route)}
	start := h.now()
	o, err := h.attempt(ctx, d)
	latency := h.now().Sub(start)
	att := Attempt{Route: wj.Route, Outcome: OutcomeError, Status: o.status, Latency: latency}
	defer func() { h.obs.WebhookAttempt(att) }()
	if err != nil {
		h.logAttempt(ctx, d, slog.LevelWarn, "prepare failed", o, latency, slog.String("error", err.Error()))
		return fmt.Errorf("webhook %s route %s: %w", wj.ID, wj.Route, err)
	}
	now := h.now()
	switch {
	case o.err == nil:
		h.logAttempt(ctx, d, slog.LevelInfo, "delivered", o, latency)
		// A directory target's file is the detail: the trace (and the
		// console's timeline) leads from the message to it.
		trace.NoteOutcome(ctx, trace.EventDelivered, o.status, o.path)
		att.Outcome = OutcomeDelivered
		return nil
	case ctx.Err() != nil:
		// Shutting down or out of time: not the receiver's fault.
		h.logAttempt(ctx, d, slog.LevelWarn, "interrupted", o, latency)
		return fmt.Errorf("webhook %s route %s: %w", wj.ID, wj.Route, ctx.Err())
	case o.permanent:
		h.logAttempt(ctx, d, slog.LevelWarn, "rejected", o, latency)
		// The verdict is the receiver's status, whatever the failure
		// notices that follow get.
		trace.NoteOutcome(ctx, trace.EventFailed, o.status, o.diag)
		if err := h.fail(ctx, d, o, reasonRejected); err != nil {
			return err
		}
		att.Outcome = OutcomeFailed
		return nil
	case d.expired(now):
		h.logAttempt(ctx, d, slog.LevelWarn, "expired", o, latency)
		trace.NoteOutcome(ctx, trace.EventExpired, o.status, o.diag)
		if err := h.fail(ctx, d, o, reasonExpired); err != nil {
			return err
		}
		att.Outcome = OutcomeExpired
		return nil
	}
	h.logAttempt(ctx, d, slog.LevelWarn, "retry", o, latency)
	trace.NoteOutcome(ctx, trace.EventRetry, o.status, o.diag)
	att.Outcome = OutcomeRetry
	return postern.RetryAfter(fmt.Errorf("webhook %s route %s: %w", wj.ID, wj.Route, o.err), h.retryDelay(d, o, now))
}

// retryDelay is when to try d again after outcome o at now: the receiver's
// Retry-After, else backoff; but never later than the route's max age, so
// the attempt at the deadline is the last and the expiry notice leaves
// then, not a whole backoff later.
func (h *Handler) retryDelay(d *delivery, o outcome, now time.Time) time.Duration {
	delay := o.after
	if delay <= 0 {
		delay = postern.Backoff(d.attempt, h.backoffBase, h.backoffMax)
	}
	if deadline, ok := d.deadline(); ok {
		if left := deadline.Sub(now); left < delay {
			// A second at least: queues count delays in whole seconds, and
			// an attempt just short of the deadline must not come back at once.
			delay = max(left, time.Second)
		}
	}
	return delay
}

// decodeJob reads and checks a job body. Every failure is permanent: the
// same bytes will never decode on a retry.
func decodeJob(body []byte) (*postern.WebhookJob, error) {
	var wj postern.WebhookJob
	if err := json.Unmarshal(body, &wj); err != nil {
		return nil, postern.Permanent(fmt.Errorf("webhook: decode job: %w", err))
	}
	if wj.V != postern.JobVersion {
		return nil, postern.Permanent(fmt.Errorf("webhook %s: job version %d, want %d", wj.ID, wj.V, postern.JobVersion))
	}
	// The id becomes store keys and file names: it must be a real ULID.
	if _, err := postern.ParseMsgID(string(wj.ID)); err != nil {
		return nil, postern.Permanent(fmt.Errorf("webhook: %w", err))
	}
	if wj.Route == "" {
		return nil, postern.Permanent(fmt.Errorf("webhook %s: job has no route", wj.ID))
	}
	return &wj, nil
}

// logAttempt writes the one line per attempt: ids, status and latency, and
// for failures the fixed-word diagnostic, never bodies, URLs or secrets.
func (h *Handler) logAttempt(ctx context.Context, d *delivery, level slog.Level, result string, o outcome, latency time.Duration, extra ...slog.Attr) {
	attrs := []slog.Attr{
		slog.String("msg_id", string(d.job.ID)),
		slog.String("stage", "webhook"),
		slog.String("route", d.job.Route),
		slog.Int("attempt", d.attempt),
		slog.String("target", d.kind()),
		slog.Int("status", o.status),
		slog.Int64("latency_ms", latency.Milliseconds()),
		slog.String("result", result),
	}
	if o.err != nil && o.diag != "" {
		attrs = append(attrs, slog.String("diagnostic", o.diag))
	}
	if o.path != "" {
		attrs = append(attrs, slog.String("path", o.path))
	}
	h.log.LogAttrs(ctx, level, "webhook attempt", append(attrs, extra...)...)
}
