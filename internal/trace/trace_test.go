package trace_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/blob/memblob"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

// The timeline reads back in order from a store that appends (fsblob)
// and from one where each record is read and written again (memblob, as S3).
func TestTimeline(t *testing.T) {
	t.Parallel()
	fs, err := fsblob.New(filepath.Join(t.TempDir(), "s"), fsblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	for name, store := range map[string]blob.Store{"fsblob": fs, "memblob": memblob.New()} {
		t.Run(name, func(t *testing.T) { testTimeline(t, store) })
	}
}

func testTimeline(t *testing.T, store blob.Store) {
	ctx := context.Background()
	id := postern.NewMsgID()
	env, _ := json.Marshal(postern.Envelope{ID: id, Sender: "cam@lan", Recipients: []postern.Recipient{{Addr: "a@app"}}, ReceivedAt: time.Now().Add(-time.Minute)})
	store.Put(ctx, id.EnvelopeKey(), bytes.NewReader(env), nil)

	calls := 0
	webhook := trace.Wrap("webhook", postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		calls++
		if calls == 1 {
			trace.NoteStatus(ctx, 503)
			return errors.New("http; 503 Service Unavailable")
		}
		trace.NoteStatus(ctx, 200)
		return nil
	}), store, slog.New(slog.DiscardHandler))
	parse := trace.Wrap("parse", postern.HandlerFunc(func(context.Context, postern.Job) error { return nil }), store, slog.New(slog.DiscardHandler))

	pj, _ := json.Marshal(postern.ParseJob{ID: id})
	wj, _ := json.Marshal(postern.WebhookJob{ID: id, Route: "app"})
	if err := parse.Handle(ctx, postern.Job{Body: pj, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if err := webhook.Handle(ctx, postern.Job{Body: wj, Attempt: 1}); err == nil {
		t.Fatal("first attempt's error was swallowed")
	}
	if err := webhook.Handle(ctx, postern.Job{Body: wj, Attempt: 2}); err != nil {
		t.Fatal(err)
	}
	evs, err := trace.Read(ctx, store, id, []string{"app", "gone"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Stage+"/"+e.Event)
	}
	want := []string{"gateway/received", "parse/done", "webhook/retry", "webhook/done"}
	if len(got) != len(want) {
		t.Fatalf("timeline %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("timeline %v, want %v", got, want)
		}
	}
	if evs[2].Status != 503 || evs[3].Status != 200 || evs[3].Attempt != 2 || evs[3].Route != "app" {
		t.Errorf("webhook events %+v %+v", evs[2], evs[3])
	}
}

// Log records what Wrap would, as one line per job that FromLog reads back,
// and touches no store.
func TestLogRecordsOutcomeLines(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil)).With(slog.String("stage", "webhook"))
	calls := 0
	h := trace.Log("webhook", postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		calls++
		switch calls {
		case 1:
			trace.NoteStatus(ctx, 503)
			return errors.New("http; 503 Service Unavailable")
		case 2:
			trace.NoteStatus(ctx, 410)
			return postern.Permanent(errors.New("http; 410 Gone"))
		}
		trace.NoteStatus(ctx, 200)
		return nil
	}), log)
	id := postern.NewMsgID()
	wj, _ := json.Marshal(postern.WebhookJob{ID: id, Route: "app"})
	for attempt := 1; attempt <= 3; attempt++ {
		_ = h.Handle(context.Background(), postern.Job{Body: wj, Attempt: attempt})
	}
	// A job naming no message is handled and logs nothing.
	if err := h.Handle(context.Background(), postern.Job{Body: []byte(`{}`), Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.Bytes())
	}
	want := []struct {
		event  string
		status int
		level  string
	}{{"retry", 503, "WARN"}, {"failed", 410, "ERROR"}, {"done", 200, "INFO"}}
	for i, line := range lines {
		got, ev, ok := trace.FromLog(line)
		if !ok || got != id {
			t.Fatalf("line %d %s: FromLog = %s, %v", i, line, got, ok)
		}
		if ev.Stage != "webhook" || ev.Route != "app" || ev.Attempt != i+1 || ev.Event != want[i].event || ev.Status != want[i].status || ev.Time.IsZero() {
			t.Errorf("line %d: event %+v, want %s with status %d", i, ev, want[i].event, want[i].status)
		}
		if (ev.Event == "done") != (ev.Detail == "") {
			t.Errorf("line %d: detail %q", i, ev.Detail)
		}
		if !bytes.Contains(line, []byte(`"level":"`+want[i].level+`"`)) {
			t.Errorf("line %d is not at %s: %s", i, want[i].level, line)
		}
	}
	if _, _, ok := trace.FromLog([]byte(`{"msg":"parsed","msg_id":"` + string(id) + `"}`)); ok {
		t.Error("FromLog took another line for an outcome")
	}
}

// Without envelope.json (the AWS gateway writes none), the envelope comes
// from parsed.json; with neither, the error says not found.
func TestEnvelopeFromParsed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := fsblob.New(filepath.Join(t.TempDir(), "s"), fsblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	id := postern.NewMsgID()
	if _, err := trace.LoadEnvelope(ctx, store, id); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("LoadEnvelope of nothing: %v, want not found", err)
	}
	old, _ := json.Marshal(postern.Parsed{V: 1, ID: id})
	store.Put(ctx, id.ParsedKey(), bytes.NewReader(old), nil)
	if _, err := trace.LoadEnvelope(ctx, store, id); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("LoadEnvelope with a parsed form without envelope: %v, want not found", err)
	}
	env := postern.Envelope{ID: id, Sender: "cam@lan", Recipients: []postern.Recipient{{Addr: "a@app"}}, Size: 42, ReceivedAt: time.Now().UTC().Truncate(time.Second)}
	p, _ := json.Marshal(postern.Parsed{V: 1, ID: id, Envelope: &env})
	store.Put(ctx, id.ParsedKey(), bytes.NewReader(p), nil)
	got, err := trace.LoadEnvelope(ctx, store, id)
	if err != nil || got.Sender != "cam@lan" || got.Size != 42 || !got.ReceivedAt.Equal(env.ReceivedAt) {
		t.Fatalf("LoadEnvelope = %+v, %v", got, err)
	}
	evs, err := trace.Read(ctx, store, id, nil)
	if err != nil || len(evs) != 1 || evs[0].Event != "received" || !evs[0].Time.Equal(env.ReceivedAt) {
		t.Fatalf("Read = %+v, %v", evs, err)
	}
	// envelope.json, where there is one, wins.
	side := env
	side.Sender = "sidecar@lan"
	sb, _ := json.Marshal(side)
	store.Put(ctx, id.EnvelopeKey(), bytes.NewReader(sb), nil)
	if got, err := trace.LoadEnvelope(ctx, store, id); err != nil || got.Sender != "sidecar@lan" {
		t.Fatalf("LoadEnvelope with both = %+v, %v", got, err)
	}
}

// A delivery refused for good ends its job without error (the DSN is
// queued), yet the message failed: the trace says failed with the status
// that decided it, and the failure notices are lines of their own with
// their own statuses.
func TestOutcomeIsTheHandlersOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := fsblob.New(filepath.Join(t.TempDir(), "s"), fsblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	id := postern.NewMsgID()
	env, _ := json.Marshal(postern.Envelope{ID: id, Sender: "cam@lan", Recipients: []postern.Recipient{{Addr: "a@app"}}, ReceivedAt: time.Now().Add(-time.Minute)})
	store.Put(ctx, id.EnvelopeKey(), bytes.NewReader(env), nil)

	h := trace.Wrap("webhook", postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		trace.NoteStatus(ctx, 410)
		trace.NoteOutcome(ctx, trace.EventFailed, 410, "http; 410 Gone")
		trace.NoteEvent(ctx, trace.EventDSNQueued, 0, "5.0.0")
		// The failure_url POST's status is its own; it must not become the
		// delivery's.
		trace.NoteStatus(ctx, 200)
		trace.NoteEvent(ctx, trace.EventFailureNotice, 200, "")
		return nil
	}), store, slog.New(slog.DiscardHandler))
	// The worker reads the handler's verdict through the same notes.
	wctx, notes := trace.WithNotes(ctx)
	wj, _ := json.Marshal(postern.WebhookJob{ID: id, Route: "app"})
	if err := h.Handle(wctx, postern.Job{Body: wj, Attempt: 4}); err != nil {
		t.Fatal(err)
	}
	if got := notes.Outcome(); got != trace.EventFailed {
		t.Errorf("Notes.Outcome = %q, want %q", got, trace.EventFailed)
	}
	evs, err := trace.Read(ctx, store, id, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	want := []trace.Event{
		{Stage: "gateway", Event: "received"},
		{Stage: "webhook", Route: "app", Attempt: 4, Event: trace.EventFailed, Status: 410, Detail: "http; 410 Gone"},
		{Stage: "webhook", Route: "app", Attempt: 4, Event: trace.EventDSNQueued, Detail: "5.0.0"},
		{Stage: "webhook", Route: "app", Attempt: 4, Event: trace.EventFailureNotice, Status: 200},
	}
	if len(evs) != len(want) {
		t.Fatalf("timeline %+v, want %d events", evs, len(want))
	}
	for i, w := range want {
		g := evs[i]
		if g.Stage != w.Stage || g.Route != w.Route || g.Event != w.Event || g.Status != w.Status || (i > 0 && (g.Detail != w.Detail || g.Attempt != w.Attempt)) {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
	}
}

// A verdict the handler could not settle (the DSN did not queue) is a
// retry in the trace; a permanent error is a failure whatever was noted.
func TestErrorOverridesVerdict(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	errs := []error{errors.New("queue dsn: down"), postern.Permanent(errors.New("route gone"))}
	calls := 0
	h := trace.Log("webhook", postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
		trace.NoteOutcome(ctx, trace.EventExpired, 503, "http; 503 Service Unavailable")
		calls++
		return errs[calls-1]
	}), log)
	id := postern.NewMsgID()
	wj, _ := json.Marshal(postern.WebhookJob{ID: id, Route: "app"})
	for i := range errs {
		_ = h.Handle(context.Background(), postern.Job{Body: wj, Attempt: i + 1})
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.Bytes())
	}
	for i, want := range []string{trace.EventRetry, trace.EventFailed} {
		_, ev, ok := trace.FromLog(lines[i])
		if !ok || ev.Event != want {
			t.Errorf("line %d: %+v, want %s", i, ev, want)
		}
	}
}

// A record cut short by a crash costs only its cut line: the next append
// starts on a line of its own, and Read skips what does not decode.
func TestTornRecordLosesOnlyItsLine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "s")
	store, err := fsblob.New(dir, fsblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	id := postern.NewMsgID()
	env, _ := json.Marshal(postern.Envelope{ID: id, ReceivedAt: time.Now().Add(-time.Minute)})
	store.Put(ctx, id.EnvelopeKey(), bytes.NewReader(env), nil)
	parse := trace.Wrap("parse", postern.HandlerFunc(func(context.Context, postern.Job) error { return nil }), store, slog.New(slog.DiscardHandler))
	pj, _ := json.Marshal(postern.ParseJob{ID: id})
	if err := parse.Handle(ctx, postern.Job{Body: pj, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	path, err := store.Path(id.Prefix() + "trace/parse.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2026-12-05T10:00:00Z","stage":"parse","ev`) // the crash
	f.Close()
	if err := parse.Handle(ctx, postern.Job{Body: pj, Attempt: 2}); err != nil {
		t.Fatal(err)
	}
	evs, err := trace.Read(ctx, store, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || evs[1].Attempt != 1 || evs[2].Attempt != 2 {
		t.Fatalf("timeline %+v, want received and both parse attempts", evs)
	}
}
