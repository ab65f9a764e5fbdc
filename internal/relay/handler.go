package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/postern/postern/internal/authview"
	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/dsn"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

// Sender enqueues a job body on the dsn queue. queue.Queue satisfies it.
type Sender interface {
	Send(ctx context.Context, body []byte, delay time.Duration) (string, error)
}

// Handler delivers postern.RelayJob jobs. It keeps no state between jobs,
// so one Handler serves concurrent calls.
//
// Delivery is at least once. A recipient the remote accepted, or one
// reported by DSN, is recorded in the store before the job is retried, and
// not sent to again. What can still duplicate a message: a crash or lost
// connection after the remote accepted the data but before its reply was
// read or recorded, a lost queue acknowledgement after the last attempt,
// and two workers holding the same job when its visibility ran out.
type Handler struct {
	store  blob.Store
	routes Routes
	dsn    Sender
	log    *slog.Logger
	now    func() time.Time
	obs    Observer

	backoffBase, backoffMax time.Duration
}

var _ postern.Handler = (*Handler)(nil)

// Option changes a Handler built by New.
type Option func(*Handler)

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

// WithClock replaces time.Now, for tests of max age and delay notices.
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

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

// New builds the relay stage. store holds the raw messages (and the relay
// progress records), routes resolves route names to transports, dsn is the
// dsn queue. A nil log discards.
func New(store blob.Store, routes Routes, dsnq Sender, log *slog.Logger, opts ...Option) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{store: store, routes: routes, dsn: dsnq, log: log, now: time.Now, obs: noObserver{},
		backoffBase: DefaultBackoffBase, backoffMax: DefaultBackoffMax}
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

// Handle makes one delivery attempt for the recipients still owed. It
// returns nil when every recipient is settled (accepted, or failed and a
// DSN queued); a temporary error, with RetryAfter, while some are deferred;
// and a permanent error only for a job that can never be delivered
// (malformed, its route gone, its message gone), which the queue dead-letters.
func (h *Handler) Handle(ctx context.Context, job postern.Job) error {
	rj, err := decodeJob(job.Body)
	if err != nil {
		return err
	}
	route, ok := h.routes(rj.Route)
	if !ok || route.Transport == nil {
		return postern.Permanent(fmt.Errorf("relay %s: route %q is not a configured relay route", rj.ID, rj.Route))
	}
	log := h.log.With(slog.String("msg_id", string(rj.ID)), slog.String("stage", "relay"),
		slog.String("route", rj.Route), slog.Int("attempt", job.Attempt))

	st, err := h.loadState(ctx, rj)
	if err != nil {
		return fmt.Errorf("relay %s route %s: %w", rj.ID, rj.Route, err)
	}
	pending := h.pending(rj, st)
	if len(pending) == 0 {
		log.LogAttrs(ctx, slog.LevelInfo, "relay already settled")
		return nil
	}

	body, err := h.store.Get(ctx, rj.ID.RawKey())
	if errors.Is(err, blob.ErrNotFound) {
		return postern.Permanent(fmt.Errorf("relay %s: raw message is gone: %w", rj.ID, err))
	}
	if err != nil {
		return fmt.Errorf("relay %s route %s: open raw message: %w", rj.ID, rj.Route, err)
	}
	m := &Message{
		ID: rj.ID, From: rj.Envelope.Sender, To: pending, Body: body, Size: rj.Envelope.Size,
		SMTPUTF8: rj.Envelope.SMTPUTF8, Ret: rj.Envelope.Ret, EnvID: rj.Envelope.EnvID,
	}
	// The sent copy starts with the parse stage's verdicts, and carries
	// no field forged in our name; the stored message stays as received.
	if rj.AuthResults != "" {
		m.Body = authview.Reader(rj.AuthResults, body)
		m.Size += int64(len(authview.Field(rj.AuthResults)))
	}
	start := h.now()
	res, err := route.Transport.Send(ctx, m)
	body.Close()
	if err == nil {
		err = checkResult(m, res)
	}
	att := Attempt{Route: rj.Route, Latency: h.now().Sub(start)}
	defer func() { h.obs.RelayAttempt(att) }()
	if err != nil {
		log.LogAttrs(ctx, slog.LevelWarn, "relay attempt failed", slog.String("error", err.Error()),
			slog.Int64("latency_ms", att.Latency.Milliseconds()))
		att.Error = len(pending)
		return fmt.Errorf("relay %s route %s: %w", rj.ID, rj.Route, err)
	}
	return h.settle(ctx, log, rj, route, st, res, job.Attempt, &att)
}

// settle acts on one attempt's per-recipient outcome: accepted recipients
// are done, refused ones are reported, deferred ones are retried until the
// route's max age and then reported. It counts the outcomes into att.
func (h *Handler) settle(ctx context.Context, log *slog.Logger, rj *postern.RelayJob, route Route, st *state,
	res *Result, attempt int, att *Attempt) error {
	now := h.now().UTC()
	age := now.Sub(rj.Created)
	// A context that ended cut the attempt short: that is not the remote's
	// doing, so it never counts towards expiry.
	expired := age >= route.maxAge() && ctx.Err() == nil

	var accepted, failed, deferred []RcptResult
	for _, r := range res.Rcpts {
		switch {
		case r.Reply.Accepted():
			accepted = append(accepted, r)
		case r.Reply.Permanent(), expired:
			failed = append(failed, r)
		default:
			deferred = append(deferred, r)
		}
		if !r.Reply.Accepted() {
			log.LogAttrs(ctx, slog.LevelWarn, "relay recipient not accepted", slog.String("rcpt", r.Addr),
				slog.Int("smtp_code", r.Reply.Code), slog.String("status", r.Reply.Status),
				slog.String("diagnostic", r.Reply.Diagnostic()), slog.Bool("permanent", r.Reply.Permanent()))
		}
	}
	result := "delivered"
	switch {
	case len(deferred) > 0:
		result = "deferred"
	case len(failed) > 0 && expired:
		result = "expired"
	case len(failed) > 0:
		result = "failed"
	}
	noteOutcome(ctx, result, accepted, failed, deferred)
	log.LogAttrs(ctx, slog.LevelInfo, "relay attempt", slog.String("remote", res.Remote),
		slog.Int("accepted", len(accepted)), slog.Int("failed", len(failed)), slog.Int("deferred", len(deferred)),
		slog.Int64("latency_ms", att.Latency.Milliseconds()), slog.String("result", result))

	changed := len(accepted) > 0
	for _, r := range accepted {
		st.Done = append(st.Done, r.Addr)
	}
	att.Delivered, att.Deferred = len(accepted), len(deferred)
	if len(failed) > 0 {
		if err := h.queueDSN(ctx, rj, res.Remote, failed, now); err != nil {
			// Not settled: they are tried again with the job.
			att.Error = len(failed)
			// Keep what was accepted, so the retry does not send it again.
			if changed {
				if serr := h.saveState(ctx, rj, st); serr != nil {
					log.LogAttrs(ctx, slog.LevelWarn, "relay state not saved", slog.String("error", serr.Error()))
				}
			}
			return fmt.Errorf("relay %s route %s: queue dsn: %w", rj.ID, rj.Route, err)
		}
		log.LogAttrs(ctx, slog.LevelWarn, "relay failed; dsn queued", slog.Int("recipients", len(failed)), slog.Bool("expired", expired))
		trace.NoteEvent(ctx, trace.EventDSNQueued, 0, fmt.Sprintf("%d recipient(s)", len(failed)))
		for _, r := range failed {
			st.Done = append(st.Done, r.Addr)
			if r.Reply.Permanent() {
				att.Failed++
			} else {
				att.Expired++
			}
		}
		changed = true
	}
	if len(deferred) == 0 {
		return nil
	}

	if route.DelayNotice > 0 && !st.DelayNotified && age >= route.DelayNotice {
		// Best effort: if queueing fails, the next attempt tries again.
		if err := h.queueDelay(ctx, rj, res.Remote, deferred, now, rj.Created.Add(route.maxAge())); err != nil {
			log.LogAttrs(ctx, slog.LevelWarn, "relay delay notice not queued", slog.String("error", err.Error()))
		} else {
			log.LogAttrs(ctx, slog.LevelInfo, "relay delayed; delay notice queued", slog.Int("recipients", len(deferred)))
			trace.NoteEvent(ctx, trace.EventDelayNoticeQueued, 0, fmt.Sprintf("%d recipient(s)", len(deferred)))
			st.DelayNotified = true
			changed = true
		}
	}
	if changed {
		if err := h.saveState(ctx, rj, st); err != nil {
			// The retry may then send again to recipients settled now.
			log.LogAttrs(ctx, slog.LevelWarn, "relay state not saved", slog.String("error", err.Error()))
		}
	}

	err := fmt.Errorf("relay %s route %s: %d recipient(s) deferred: %s", rj.ID, rj.Route, len(deferred), deferred[0].Reply.Diagnostic())
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	delay := backoff(h.backoffBase, h.backoffMax, attempt)
	// The remote's own hint is a floor: sooner only draws the same answer.
	for _, r := range deferred {
		delay = max(delay, r.Reply.RetryAfter)
	}
	return postern.RetryAfter(err, nextDelay(delay, now, rj.Created, route, st.DelayNotified))
}

// nextDelay caps a retry delay so the next attempt comes no later than the
// route's max age (the attempt then is the last, and the expiry notice
// leaves with it) nor, while a delay notice is still owed, its time (the
// notice goes out with an attempt). The cap wins over the remote's
// Retry-After: a deadline kept matters more than one more refusal. A
// second is the floor: queues count delays in whole seconds, and an
// attempt just short of a deadline must not come back at once.
func nextDelay(delay time.Duration, now, created time.Time, route Route, notified bool) time.Duration {
	capAt := func(at time.Time) {
		if left := at.Sub(now); left < delay {
			delay = max(left, time.Second)
		}
	}
	capAt(created.Add(route.maxAge()))
	if route.DelayNotice > 0 && !notified {
		if at := created.Add(route.DelayNotice); at.After(now) {
			capAt(at)
		}
	}
	return delay
}

// noteOutcome tells the tracer how the attempt ended for the message (see
// settle's result), with the reply that decided it: the first deferred one
// while any recipient is retried, else the first failed one.
func noteOutcome(ctx context.Context, result string, accepted, failed, deferred []RcptResult) {
	var (
		event  = trace.EventDelivered
		decide []RcptResult
	)
	switch result {
	case "deferred":
		event, decide = trace.EventRetry, deferred
	case "expired":
		event, decide = trace.EventExpired, failed
	case "failed":
		event, decide = trace.EventFailed, failed
	default:
		decide = accepted
	}
	if len(decide) == 0 {
		trace.NoteOutcome(ctx, event, 0, "")
		return
	}
	r := decide[0].Reply
	detail := ""
	if event != trace.EventDelivered {
		detail = fmt.Sprintf("%d recipient(s): %s", len(decide), r.Diagnostic())
	}
	trace.NoteOutcome(ctx, event, r.Code, detail)
}

// pending lists the job's recipients not yet settled, with their RFC 3461
// parameters from the envelope.
func (h *Handler) pending(rj *postern.RelayJob, st *state) []Rcpt {
	addrs := rj.Recipients
	if len(addrs) == 0 {
		addrs = rj.Envelope.RecipientAddrs()
	}
	var out []Rcpt
	for _, a := range addrs {
		if slices.Contains(st.Done, a) || slices.ContainsFunc(out, func(r Rcpt) bool { return r.Addr == a }) {
			continue
		}
		rc := Rcpt{Addr: a}
		for _, er := range rj.Envelope.Recipients {
			if er.Addr == a {
				rc.Notify, rc.ORCPT = er.Notify, er.ORCPT
				break
			}
		}
		out = append(out, rc)
	}
	return out
}

func (h *Handler) queueDSN(ctx context.Context, rj *postern.RelayJob, remote string, failed []RcptResult, now time.Time) error {
	return h.enqueue(ctx, dsn.Job{DSNJob: h.dsnJob(rj, remote, failed, now)})
}

func (h *Handler) queueDelay(ctx context.Context, rj *postern.RelayJob, remote string, deferred []RcptResult, now, until time.Time) error {
	return h.enqueue(ctx, dsn.Job{DSNJob: h.dsnJob(rj, remote, deferred, now), Action: dsn.ActionDelayed, RetryUntil: until})
}

func (h *Handler) dsnJob(rj *postern.RelayJob, remote string, rs []RcptResult, now time.Time) postern.DSNJob {
	j := postern.DSNJob{V: postern.JobVersion, ID: rj.ID, Envelope: rj.Envelope, Created: now,
		Failed: make([]postern.Failure, len(rs))}
	for i, r := range rs {
		f := postern.Failure{Recipient: r.Addr, Route: rj.Route, Status: r.Reply.Status,
			Diagnostic: r.Reply.Diagnostic(), LastAt: now}
		if r.Reply.Remote() {
			f.RemoteMTA = remote
		}
		j.Failed[i] = f
	}
	return j
}

func (h *Handler) enqueue(ctx context.Context, j dsn.Job) error {
	body, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode dsn job: %w", err)
	}
	if _, err := h.dsn.Send(ctx, body, 0); err != nil {
		return err
	}
	return nil
}

// decodeJob reads and checks a job body. Every failure is permanent: the
// same bytes will never decode on a retry.
func decodeJob(body []byte) (*postern.RelayJob, error) {
	var rj postern.RelayJob
	if err := json.Unmarshal(body, &rj); err != nil {
		return nil, postern.Permanent(fmt.Errorf("relay: decode job: %w", err))
	}
	if rj.V != postern.JobVersion {
		return nil, postern.Permanent(fmt.Errorf("relay %s: job version %d, want %d", rj.ID, rj.V, postern.JobVersion))
	}
	if _, err := postern.ParseMsgID(string(rj.ID)); err != nil {
		return nil, postern.Permanent(fmt.Errorf("relay: %w", err))
	}
	if rj.Route == "" {
		return nil, postern.Permanent(fmt.Errorf("relay %s: job has no route", rj.ID))
	}
	if rj.Created.IsZero() {
		return nil, postern.Permanent(fmt.Errorf("relay %s: job has no created time", rj.ID))
	}
	return &rj, nil
}
