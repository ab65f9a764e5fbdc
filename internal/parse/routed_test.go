package parse

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

// Routing shows in the message's timeline: one routed event per route the
// message went to, and one for the recipients that get a failure notice.
func TestRoutedEventsInTheTrace(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, testRules)
	id, _, body := hs.submit(t, buildMessage(t).raw, "archive@example.com", "x@partner.example", "nobody@example.com")
	h := trace.Wrap("parse", hs.h, hs.store, slog.New(slog.DiscardHandler))
	if err := h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	evs, err := trace.Read(context.Background(), hs.store, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	var routed []string
	for _, ev := range evs {
		if ev.Event == trace.EventRouted {
			routed = append(routed, ev.Detail)
		}
	}
	want := []string{"route archive (directory): 1 recipient(s)", "route partners (relay): 1 recipient(s)", "no route or refused: 1 recipient(s) to a failure notice"}
	if strings.Join(routed, "|") != strings.Join(want, "|") {
		t.Errorf("routed events %q, want %q", routed, want)
	}
}
