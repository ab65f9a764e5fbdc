// Package trace keeps each message's timeline: every stage records events
// (received, done, retry, failed) per message id, so "did the scanner's
// mail arrive, and what did the app answer?" has an answer. Locally (Wrap)
// they are appended to the message's record in the store; on AWS (Log)
// they are one structured log line each, in CloudWatch Logs, because a
// read-modify-write of an S3 object per stage would double what a message
// costs in requests.
package trace

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/postern"
)

// Event is one step in a message's life.
type Event struct {
	Time      time.Time `json:"time"`
	Stage     string    `json:"stage"` // gateway, parse, webhook, relay, dsn
	Event     string    `json:"event"` // received, done, retry, failed, expired; or a side event (EventDSNQueued, ...)
	Route     string    `json:"route,omitempty"`
	Attempt   int       `json:"attempt,omitempty"`
	Status    int       `json:"status,omitempty"` // e.g. the webhook's HTTP status, when the stage noted one
	LatencyMS int64     `json:"latency_ms"`
	Detail    string    `json:"detail,omitempty"`
	// DeadLettered marks the failed event of a job whose handler returned a
	// permanent error: the worker moves the job to the dead-letter queue
	// (a redrive runs it again), unlike a message refused for good.
	DeadLettered bool `json:"dead_lettered,omitempty"`
}

// key is the object one stage (and route) appends to. Each object has one
// writer at a time (a job is handled by one consumer while it is in
// flight), so read-modify-write does not lose events to a race with
// another stage.
func key(id postern.MsgID, stage, route string) string {
	name := stage
	if route != "" {
		name += "-" + route
	}
	return id.Prefix() + "trace/" + name + ".jsonl"
}

// Append adds ev to the message's record.
func Append(ctx context.Context, store blob.Store, id postern.MsgID, ev Event) error {
	return appendEvents(ctx, store, id, []Event{ev})
}

// appender is a store that can add to the end of an object (fsblob): a
// record then costs one append, not a read, a new copy, a rename and two
// flushes. The append is not flushed at once; the local store's periodic
// sync (the spool's checkpoint) or the kernel's writeback makes it durable,
// and a record is best effort all the same.
type appender interface {
	Append(ctx context.Context, key string, b []byte) error
}

// appendEvents adds evs, which share a stage and route, to the message's
// record: one append, or one read and one write.
func appendEvents(ctx context.Context, store blob.Store, id postern.MsgID, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	k := key(id, evs[0].Stage, evs[0].Route)
	if a, ok := store.(appender); ok {
		var buf bytes.Buffer
		if err := writeLines(&buf, evs); err != nil {
			return err
		}
		if err := a.Append(ctx, k, buf.Bytes()); err != nil {
			return fmt.Errorf("trace %s: append: %w", id, err)
		}
		return nil
	}
	var buf bytes.Buffer
	rc, err := store.Get(ctx, k)
	switch {
	case err == nil:
		_, err = io.Copy(&buf, io.LimitReader(rc, 1<<20))
		rc.Close()
		if err != nil {
			return fmt.Errorf("trace %s: read: %w", id, err)
		}
	case !errors.Is(err, blob.ErrNotFound):
		return fmt.Errorf("trace %s: read: %w", id, err)
	}
	if err := writeLines(&buf, evs); err != nil {
		return err
	}
	if err := store.Put(ctx, k, &buf, &blob.PutOptions{ContentType: "application/x-ndjson"}); err != nil {
		return fmt.Errorf("trace %s: write: %w", id, err)
	}
	return nil
}

// writeLines writes evs to buf as JSON lines.
func writeLines(buf *bytes.Buffer, evs []Event) error {
	for _, ev := range evs {
		line, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return nil
}

// Read returns the message's events in time order: the received event from
// the envelope (LoadEnvelope), then those of the gateway, parse and dsn
// stages and of each named route.
func Read(ctx context.Context, store blob.Store, id postern.MsgID, routes []string) ([]Event, error) {
	var out []Event
	env, err := LoadEnvelope(ctx, store, id)
	if err != nil {
		return nil, err
	}
	out = append(out, Event{Time: env.ReceivedAt, Stage: "gateway", Event: "received",
		Detail: fmt.Sprintf("from <%s> to %d recipient(s), identity %s, client %s, %d bytes", env.Sender, len(env.Recipients), env.Identity, env.ClientIP, env.Size)})
	keys := []string{key(id, "parse", ""), key(id, "dsn", "")}
	for _, r := range routes {
		keys = append(keys, key(id, "webhook", r), key(id, "relay", r))
	}
	for _, k := range keys {
		rc, err := store.Get(ctx, k)
		if errors.Is(err, blob.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			var ev Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				out = append(out, ev)
			}
		}
		rc.Close()
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// Events a job can end in, and side events a handler notes besides its
// job's outcome. A webhook refused for good ends its job without error once
// the DSN is queued, but the message failed: the handler says so with
// NoteOutcome, and the failure notices it sent are lines of their own, so
// the status of a failure_url POST never passes for the delivery's.
const (
	EventDone      = "done"      // the stage's work is done
	EventDelivered = "delivered" // a delivery stage's target took the message
	EventRetry     = "retry"     // tried, to be tried again
	EventFailed    = "failed"    // refused for good (or a job that can never run)
	EventExpired   = "expired"   // still failing at the route's max age

	EventRouted            = "routed"              // parse handed the message to a route (or the DSN); Detail says which
	EventDSNQueued         = "dsn_queued"          // a failure notice (DSN) queued; Detail its status
	EventDelayNoticeQueued = "delay_notice_queued" // a delay notice (DSN, action delayed) queued
	EventFailureNotice     = "failure_notice"      // the route's failure_url POSTed; Status its answer
)

// noteKey carries a Notes into a handler's context.
type noteKey struct{}

// Notes lets a handler tell the tracer (and the worker's metrics) facts only
// it knows: the status its attempt got, how the job ended for the message,
// and side events. It is safe for concurrent use.
type Notes struct {
	mu      sync.Mutex
	status  int
	outcome *Event  // set by NoteOutcome
	side    []Event // NoteEvent's, in order
}

// WithNotes returns ctx carrying a Notes, or the one ctx already carries,
// so a worker that wraps a traced handler reads what the handler noted.
func WithNotes(ctx context.Context) (context.Context, *Notes) {
	if n, ok := ctx.Value(noteKey{}).(*Notes); ok {
		return ctx, n
	}
	n := &Notes{}
	return context.WithValue(ctx, noteKey{}, n), n
}

// Outcome returns the event the handler noted with NoteOutcome, "" when
// it noted none (its error then tells).
func (n *Notes) Outcome() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.outcome == nil {
		return ""
	}
	return n.outcome.Event
}

// NoteStatus records the status a handler's last attempt got. It does
// nothing when the context carries no tracer.
func NoteStatus(ctx context.Context, status int) {
	if n, ok := ctx.Value(noteKey{}).(*Notes); ok {
		n.mu.Lock()
		n.status = status
		n.mu.Unlock()
	}
}

// NoteOutcome records how the job ended for the message (EventDelivered,
// EventDone, EventRetry, EventFailed or EventExpired), the status that decided it (0
// for none) and a short detail (a diagnostic, never a secret or body). It
// wins over the handler's error and over NoteStatus; the last call counts.
func NoteOutcome(ctx context.Context, event string, status int, detail string) {
	if n, ok := ctx.Value(noteKey{}).(*Notes); ok {
		n.mu.Lock()
		n.outcome = &Event{Time: time.Now().UTC(), Event: event, Status: status, Detail: detail}
		n.mu.Unlock()
	}
}

// NoteEvent records a side event of the job (EventDSNQueued,
// EventFailureNotice, ...) as a line of its own, after the job's outcome.
// Stage, Route and Attempt are the job's; Time is now.
func NoteEvent(ctx context.Context, event string, status int, detail string) {
	if n, ok := ctx.Value(noteKey{}).(*Notes); ok {
		n.mu.Lock()
		n.side = append(n.side, Event{Time: time.Now().UTC(), Event: event, Status: status, Detail: detail})
		n.mu.Unlock()
	}
}

// jobRef is what the tracer needs from any job body.
type jobRef struct {
	ID    postern.MsgID `json:"id"`
	Route string        `json:"route"`
}

// LoadEnvelope reads a stored message's envelope: the envelope.json
// sidecar, or where there is none (on AWS the gateway writes none; the
// ParseJob carries the envelope) the copy the parse stage keeps in
// parsed.json. A message with neither gives an error wrapping
// blob.ErrNotFound.
func LoadEnvelope(ctx context.Context, store blob.Store, id postern.MsgID) (*postern.Envelope, error) {
	var env postern.Envelope
	err := decodeObject(ctx, store, id.EnvelopeKey(), &env)
	if err == nil {
		return &env, nil
	}
	if !errors.Is(err, blob.ErrNotFound) {
		return nil, fmt.Errorf("message %s: envelope: %w", id, err)
	}
	var p struct {
		Envelope *postern.Envelope `json:"envelope"`
	}
	switch err := decodeObject(ctx, store, id.ParsedKey(), &p); {
	case errors.Is(err, blob.ErrNotFound):
		return nil, fmt.Errorf("message %s: no envelope.json and not parsed yet: %w", id, err)
	case err != nil:
		return nil, fmt.Errorf("message %s: parsed form: %w", id, err)
	case p.Envelope == nil:
		return nil, fmt.Errorf("message %s: no envelope.json, and parsed.json predates its envelope copy: %w", id, blob.ErrNotFound)
	}
	return p.Envelope, nil
}

func decodeObject(ctx context.Context, store blob.Store, key string, v any) error {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}

// Wrap records an event for every job h handles in the message's record in
// store. Recording is best effort: a failure to write the trace is logged
// and never fails the job. It costs one append per job on a store that
// appends (fsblob), else a GET and a PUT: the local mode's tracer; on AWS
// use Log.
func Wrap(stage string, h postern.Handler, store blob.Store, log *slog.Logger) postern.Handler {
	return WrapTee(stage, h, store, log, nil)
}

// Tee is told the events Wrap recorded for a job, after they were appended
// (or failed to be). It runs on the job's goroutine, on the hot path of
// every stage: it must return at once (hand the events on, never wait) and
// must not keep or change evs' elements beyond copying them.
type Tee func(id postern.MsgID, evs []Event)

// WrapTee is Wrap that also hands each job's events to tee (nil: none),
// for a reader that keeps its own view of messages (a search index).
func WrapTee(stage string, h postern.Handler, store blob.Store, log *slog.Logger, tee Tee) postern.Handler {
	return observe(stage, h, func(ctx context.Context, id postern.MsgID, evs []Event) {
		if tee != nil {
			defer tee(id, evs)
		}
		// Stages are idempotent, so a Put here after the stage's own work is
		// safe to repeat; a detached context lets it land even when the
		// job's own deadline has just passed.
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if terr := appendEvents(tctx, store, id, evs); terr != nil {
			log.Warn("trace not recorded", slog.String("msg_id", string(id)), slog.String("stage", stage), slog.String("error", terr.Error()))
		}
	})
}

// OutcomeMessage is the msg of Log's lines, for finding them again (a
// CloudWatch Logs filter pattern such as { $.msg = "stage outcome" &&
// $.msg_id = "<id>" }).
const OutcomeMessage = "stage outcome"

// Log records the same event as Wrap for every job h handles, as one log
// line (OutcomeMessage) with msg_id, stage, route, event, attempt, status,
// latency_ms and detail, and makes no store request: the AWS functions'
// tracer, whose lines CloudWatch Logs keeps. A retry is logged at Warn and a
// failure at Error; FromLog reads a line back.
func Log(stage string, h postern.Handler, log *slog.Logger) postern.Handler {
	return observe(stage, h, func(ctx context.Context, id postern.MsgID, evs []Event) {
		for _, ev := range evs {
			level := slog.LevelInfo
			switch ev.Event {
			case EventRetry:
				level = slog.LevelWarn
			case EventFailed, EventExpired:
				level = slog.LevelError
			}
			log.LogAttrs(ctx, level, OutcomeMessage,
				slog.String("msg_id", string(id)), slog.String("stage", ev.Stage), slog.String("route", ev.Route),
				slog.String("event", ev.Event), slog.Int("attempt", ev.Attempt), slog.Int("status", ev.Status),
				slog.Int64("latency_ms", ev.LatencyMS), slog.String("detail", ev.Detail))
		}
	})
}

// FromLog reads one JSON log line written by Log (through a
// slog.JSONHandler) back into its message id and event; ok is false for any
// other line.
func FromLog(line []byte) (id postern.MsgID, ev Event, ok bool) {
	var l struct {
		Time      time.Time `json:"time"`
		Msg       string    `json:"msg"`
		MsgID     string    `json:"msg_id"`
		Stage     string    `json:"stage"`
		Route     string    `json:"route"`
		Event     string    `json:"event"`
		Attempt   int       `json:"attempt"`
		Status    int       `json:"status"`
		LatencyMS int64     `json:"latency_ms"`
		Detail    string    `json:"detail"`
	}
	if json.Unmarshal(line, &l) != nil || l.Msg != OutcomeMessage {
		return "", Event{}, false
	}
	id, err := postern.ParseMsgID(l.MsgID)
	if err != nil || l.Event == "" {
		return "", Event{}, false
	}
	return id, Event{Time: l.Time.UTC(), Stage: l.Stage, Event: l.Event, Route: l.Route, Attempt: l.Attempt,
		Status: l.Status, LatencyMS: l.LatencyMS, Detail: l.Detail}, true
}

// observe runs h and hands record the events of each job whose body names
// a message: the job's outcome (done, retry, failed or expired; what the
// handler noted with NoteOutcome, else what its error says), then the side
// events it noted. It returns h's error unchanged.
func observe(stage string, h postern.Handler, record func(ctx context.Context, id postern.MsgID, evs []Event)) postern.Handler {
	return postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		hctx, notes := WithNotes(ctx)
		start := time.Now()
		err := h.Handle(hctx, job)
		var ref jobRef
		if json.Unmarshal(job.Body, &ref) != nil || ref.ID == "" {
			return err
		}
		if _, perr := postern.ParseMsgID(string(ref.ID)); perr != nil {
			return err
		}
		ev := Event{Time: time.Now().UTC(), Stage: stage, Event: EventDone, Route: ref.Route, Attempt: job.Attempt,
			LatencyMS: time.Since(start).Milliseconds()}
		notes.mu.Lock()
		ev.Status = notes.status
		noted, side := notes.outcome, slices.Clone(notes.side)
		notes.mu.Unlock()
		switch {
		case err != nil && postern.IsPermanent(err):
			// A job that can never run: whatever was noted before, it is
			// dead-lettered.
			ev.Event, ev.Detail, ev.DeadLettered = EventFailed, err.Error(), true
		case err != nil && (noted == nil || noted.Event != EventRetry):
			ev.Event, ev.Detail = EventRetry, err.Error()
			if noted != nil {
				// The handler decided, but could not settle it (the DSN did
				// not queue): the job is retried.
				ev.Status = noted.Status
			}
		case noted != nil:
			// The handler's own verdict, with the status that decided it
			// rather than the last one any request got.
			ev.Event, ev.Status, ev.Detail = noted.Event, noted.Status, noted.Detail
			if err != nil && ev.Detail == "" {
				ev.Detail = err.Error()
			}
		}
		evs := []Event{ev}
		for _, s := range side {
			s.Stage, s.Route, s.Attempt = stage, ref.Route, job.Attempt
			// Side events happen after the verdict; a line never sorts before it.
			if s.Time.Before(ev.Time) {
				s.Time = ev.Time
			}
			evs = append(evs, s)
		}
		record(ctx, ref.ID, evs)
		return err
	})
}
