package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

// Why a delivery ended without success.
const (
	reasonRejected = "rejected" // the receiver answered with a permanent status
	reasonExpired  = "expired"  // retried past the route's max age
)

// DSN statuses (RFC 3463): a refusal is a permanent failure with no finer
// detail to give; running out of time is "delivery time expired".
const (
	statusRejected = "5.0.0"
	statusExpired  = "4.4.7"
)

// fail records a final failure: it queues a DSN for each recipient of the
// job, then tells the route's failure URL (best effort). It returns nil once
// the DSN is queued, since the DSN is the record; if queueing fails it
// returns a temporary error, so the job comes back and nothing is lost.
func (h *Handler) fail(ctx context.Context, d *delivery, o outcome, reason string) error {
	status := statusRejected
	if reason == reasonExpired {
		status = statusExpired
	}
	now := h.now().UTC()
	rcpts := d.job.Recipients
	if len(rcpts) == 0 {
		rcpts = d.job.Envelope.RecipientAddrs()
	}
	job := postern.DSNJob{
		V:        postern.JobVersion,
		ID:       d.job.ID,
		Envelope: d.job.Envelope,
		Failed:   make([]postern.Failure, len(rcpts)),
		Created:  now,
	}
	for i, r := range rcpts {
		job.Failed[i] = postern.Failure{Recipient: r, Route: d.job.Route, Status: status, Diagnostic: o.diag, LastAt: now}
	}
	body, err := json.Marshal(job)
	if err != nil {
		return fmt.Errorf("webhook %s route %s: encode dsn job: %w", d.job.ID, d.job.Route, err)
	}
	if _, err := h.dsn.Send(ctx, body, 0); err != nil {
		// Deliberately not wrapping o.err: the job must come back even when
		// the delivery failure itself was permanent.
		return fmt.Errorf("webhook %s route %s: %s, and queueing the dsn failed: %w", d.job.ID, d.job.Route, reason, err)
	}
	trace.NoteEvent(ctx, trace.EventDSNQueued, 0, status)
	h.log.LogAttrs(ctx, slog.LevelWarn, "webhook failed; dsn queued",
		slog.String("msg_id", string(d.job.ID)),
		slog.String("stage", "webhook"),
		slog.String("route", d.job.Route),
		slog.Int("attempt", d.attempt),
		slog.String("reason", reason),
		slog.String("dsn_status", status),
		slog.String("diagnostic", o.diag),
		slog.Int("recipients", len(rcpts)),
	)
	if d.target.FailureURL != "" {
		h.notifyFailure(ctx, d, Failed{
			V:          PayloadVersion,
			ID:         d.job.ID,
			Route:      d.job.Route,
			WebhookID:  d.webhookID,
			Recipients: rcpts,
			Reason:     reason,
			Status:     status,
			Diagnostic: o.diag,
			Attempts:   d.attempt,
			Created:    d.job.Created.UTC(),
		})
	}
	return nil
}

// notifyFailure POSTs a signed email.failed event to the route's failure
// URL, once: its outcome is logged, never retried, since the DSN already
// holds the failure. It has its own webhook-id (the delivery's plus
// ".failed") because it is a different event.
func (h *Handler) notifyFailure(ctx context.Context, d *delivery, f Failed) {
	ts := h.now()
	body, err := json.Marshal(FailedEvent{Type: EventFailed, Timestamp: ts.UTC().Truncate(time.Second), Data: f})
	attrs := []slog.Attr{
		slog.String("msg_id", string(d.job.ID)),
		slog.String("stage", "webhook"),
		slog.String("route", d.job.Route),
		slog.Int("attempt", d.attempt),
	}
	if err != nil {
		h.log.LogAttrs(ctx, slog.LevelError, "webhook failure notice not sent", append(attrs, slog.String("error", err.Error()))...)
		return
	}
	id := d.webhookID + ".failed"
	start := h.now()
	o := h.send(ctx, d.target, request{
		url:    d.target.FailureURL,
		header: signedHeader(id, ts, signatures(d.target.Secrets, id, ts, body), "application/json"),
		body:   bytes.NewReader(body),
	})
	attrs = append(attrs, slog.Int("status", o.status), slog.Int64("latency_ms", h.now().Sub(start).Milliseconds()))
	// Its own line in the trace: this status is the notice's, not the delivery's.
	detail := ""
	if o.err != nil {
		detail = o.diag
	}
	trace.NoteEvent(ctx, trace.EventFailureNotice, o.status, detail)
	if o.err != nil {
		h.log.LogAttrs(ctx, slog.LevelWarn, "webhook failure notice failed", append(attrs, slog.String("diagnostic", o.diag))...)
		return
	}
	h.log.LogAttrs(ctx, slog.LevelInfo, "webhook failure notice sent", attrs...)
}
