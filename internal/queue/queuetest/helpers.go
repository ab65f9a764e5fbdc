package queuetest

import (
	"context"
	"testing"
	"time"

	"github.com/postern/postern/internal/queue"
)

const (
	// slack is what a timing bound allows for a server that counts whole
	// seconds and a busy machine.
	slack = time.Second
	// hide is a visibility long enough that nothing comes back during a case.
	hide = 30 * time.Second
)

// newQueue is a fresh queue without a dead-letter queue.
func newQueue(t *testing.T, h Harness) queue.Queue {
	t.Helper()
	q, _ := h.New(t, Spec{})
	if q == nil {
		t.Fatal("harness returned a nil queue")
	}
	return q
}

// testCtx bounds every call of a case, so a hung driver fails instead of
// stalling the run.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func send(t *testing.T, ctx context.Context, q queue.Queue, body string, delay time.Duration) string {
	t.Helper()
	id, err := q.Send(ctx, []byte(body), delay)
	if err != nil {
		t.Fatalf("Send(%q, %s): %v", body, delay, err)
	}
	if id == "" {
		t.Fatalf("Send(%q) returned an empty id", body)
	}
	return id
}

func receive(t *testing.T, ctx context.Context, q queue.Queue, max int, visibility, wait time.Duration) []queue.Message {
	t.Helper()
	msgs, err := q.Receive(ctx, max, visibility, wait)
	if err != nil {
		t.Fatalf("Receive(max %d, visibility %s, wait %s): %v", max, visibility, wait, err)
	}
	if len(msgs) > max {
		t.Fatalf("Receive(max %d) returned %d messages", max, len(msgs))
	}
	return msgs
}

// receiveOne long-polls until a message arrives or wait runs out, and fails
// unless exactly one came.
func receiveOne(t *testing.T, ctx context.Context, q queue.Queue, visibility, wait time.Duration) queue.Message {
	t.Helper()
	msgs := receive(t, ctx, q, 10, visibility, wait)
	if len(msgs) != 1 {
		t.Fatalf("Receive(wait %s) got %d messages, want 1: %v", wait, len(msgs), ids(msgs))
	}
	return msgs[0]
}

// expectNone long-polls for wait and fails if anything is delivered.
func expectNone(t *testing.T, ctx context.Context, q queue.Queue, wait time.Duration, why string) {
	t.Helper()
	if msgs := receive(t, ctx, q, 10, hide, wait); len(msgs) != 0 {
		t.Fatalf("%s, but Receive got %d messages: %v", why, len(msgs), ids(msgs))
	}
}

func ids(msgs []queue.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}
