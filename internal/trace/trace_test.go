package trace_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

func TestTimeline(t *testing.T) {
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
