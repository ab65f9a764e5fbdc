// Package trace keeps each message's timeline: every stage appends events
// (received, done, retry, failed) to the message's record in the store, so
// "did the scanner's mail arrive, and what did the app answer?" has an
// answer per message id, locally and on S3.
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
	Event     string    `json:"event"` // received, done, retry, failed
	Route     string    `json:"route,omitempty"`
	Attempt   int       `json:"attempt,omitempty"`
	Status    int       `json:"status,omitempty"` // e.g. the webhook's HTTP status, when the stage noted one
	LatencyMS int64     `json:"latency_ms"`
	Detail    string    `json:"detail,omitempty"`
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
	k := key(id, ev.Stage, ev.Route)
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
	line, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	buf.Write(line)
	buf.WriteByte('\n')
	if err := store.Put(ctx, k, &buf, &blob.PutOptions{ContentType: "application/x-ndjson"}); err != nil {
		return fmt.Errorf("trace %s: write: %w", id, err)
	}
	return nil
}

// Read returns the message's events in time order: the received event from
// the envelope sidecar, then those of the gateway, parse and dsn stages and
// of each named route.
func Read(ctx context.Context, store blob.Store, id postern.MsgID, routes []string) ([]Event, error) {
	var out []Event
	rc, err := store.Get(ctx, id.EnvelopeKey())
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	var env postern.Envelope
	err = json.NewDecoder(rc).Decode(&env)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("message %s: envelope: %w", id, err)
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

// noteKey carries a Notes into a handler's context.
type noteKey struct{}

// Notes lets a handler tell the tracer facts only it knows (an HTTP status).
type Notes struct {
	mu     sync.Mutex
	status int
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

// jobRef is what the tracer needs from any job body.
type jobRef struct {
	ID    postern.MsgID `json:"id"`
	Route string        `json:"route"`
}

// Wrap records an event for every job h handles. Recording is best
// effort: a failure to write the trace is logged and never fails the job.
func Wrap(stage string, h postern.Handler, store blob.Store, log *slog.Logger) postern.Handler {
	return postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		notes := &Notes{}
		start := time.Now()
		err := h.Handle(context.WithValue(ctx, noteKey{}, notes), job)
		var ref jobRef
		if json.Unmarshal(job.Body, &ref) != nil || ref.ID == "" {
			return err
		}
		if _, perr := postern.ParseMsgID(string(ref.ID)); perr != nil {
			return err
		}
		ev := Event{Time: time.Now().UTC(), Stage: stage, Event: "done", Route: ref.Route, Attempt: job.Attempt,
			LatencyMS: time.Since(start).Milliseconds()}
		notes.mu.Lock()
		ev.Status = notes.status
		notes.mu.Unlock()
		switch {
		case err == nil:
		case postern.IsPermanent(err):
			ev.Event, ev.Detail = "failed", err.Error()
		default:
			ev.Event, ev.Detail = "retry", err.Error()
		}
		// Stages are idempotent, so a Put here after the stage's own work is
		// safe to repeat; a detached context lets it land even when the
		// job's own deadline has just passed.
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if terr := Append(tctx, store, ref.ID, ev); terr != nil {
			log.Warn("trace not recorded", slog.String("msg_id", string(ref.ID)), slog.String("stage", stage), slog.String("error", terr.Error()))
		}
		return err
	})
}
