package queuetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/queue"
)

// testRoundTrip: what is sent comes back byte for byte, once, with its id,
// a first receive count and the time it was sent.
func testRoundTrip(t *testing.T, h Harness) {
	ctx := testCtx(t)
	q := newQueue(t, h)
	body := make([]byte, 0, 512)
	for i := range 256 {
		body = append(body, byte(i)) // NUL, invalid UTF-8 and all
	}
	body = append(body, "\r\n.\r\n{\"v\":1}"...)

	before := time.Now()
	id, err := q.Send(ctx, body, 0)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	after := time.Now()
	m := receiveOne(t, ctx, q, hide, 2*time.Second)
	if m.ID != id {
		t.Errorf("ID = %q, Send returned %q", m.ID, id)
	}
	if !bytes.Equal(m.Body, body) {
		t.Errorf("Body = %q, want %q", m.Body, body)
	}
	if m.ReceiveCount != 1 {
		t.Errorf("ReceiveCount = %d, want 1", m.ReceiveCount)
	}
	if m.Receipt == "" {
		t.Error("Receipt is empty")
	}
	if m.SentAt.Before(before.Add(-slack)) || m.SentAt.After(after.Add(slack)) {
		t.Errorf("SentAt = %s, want between %s and %s", m.SentAt, before, after)
	}
	if err := q.Delete(ctx, m.Receipt); err != nil {
		t.Errorf("Delete: %v", err)
	}
}

// testEmptyWait: an empty queue long-polls for about wait and returns an
// empty slice, not an error; with no wait it returns at once.
func testEmptyWait(t *testing.T, h Harness) {
	ctx := testCtx(t)
	q := newQueue(t, h)

	start := time.Now()
	msgs := receive(t, ctx, q, 1, time.Second, 0)
	if len(msgs) != 0 {
		t.Fatalf("Receive on an empty queue got %v", ids(msgs))
	}
	if d := time.Since(start); d > slack {
		t.Errorf("Receive with no wait took %s", d)
	}

	const wait = time.Second
	start = time.Now()
	msgs = receive(t, ctx, q, 1, time.Second, wait)
	d := time.Since(start)
	if len(msgs) != 0 {
		t.Fatalf("Receive on an empty queue got %v", ids(msgs))
	}
	if d < wait-200*time.Millisecond || d > wait+2*slack {
		t.Errorf("Receive(wait %s) on an empty queue returned after %s", wait, d)
	}
}

// testLongPollWakes: a long poll returns soon after a message is sent, not
// at the end of its wait.
func testLongPollWakes(t *testing.T, h Harness) {
	ctx := testCtx(t)
	q := newQueue(t, h)
	const wait = 5 * time.Second

	sent := make(chan string, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		id, err := q.Send(ctx, []byte("wake"), 0)
		if err != nil {
			t.Errorf("Send: %v", err)
		}
		sent <- id
	}()
	start := time.Now()
	m := receiveOne(t, ctx, q, hide, wait)
	d := time.Since(start)
	if id := <-sent; m.ID != id {
		t.Errorf("got %q, sent %q", m.ID, id)
	}
	if d > 300*time.Millisecond+2*slack {
		t.Errorf("long poll returned %s after start, want soon after the send at 300ms (wait was %s)", d, wait)
	}
}

// testMaxRespected: no Receive returns more than max, and repeated ones
// drain the queue without duplicates.
func testMaxRespected(t *testing.T, h Harness) {
	ctx := testCtx(t)
	q := newQueue(t, h)
	want := map[string]bool{}
	for i := range 5 {
		want[send(t, ctx, q, fmt.Sprintf("m%d", i), 0)] = true
	}
	if msgs := receive(t, ctx, q, 1, hide, time.Second); len(msgs) != 1 {
		t.Fatalf("Receive(max 1) with 5 queued got %d", len(msgs))
	} else {
		delete(want, msgs[0].ID)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(want) > 0 && time.Now().Before(deadline) {
		for _, m := range receive(t, ctx, q, 2, hide, time.Second) {
			if !want[m.ID] {
				t.Fatalf("got %q, which is unknown or was received already", m.ID)
			}
			delete(want, m.ID)
		}
	}
	if len(want) > 0 {
		t.Fatalf("never received %d messages: %v", len(want), want)
	}
}

// testDelay: a delayed message stays hidden until its delay passes, while
// one sent after it without delay is received first.
func testDelay(t *testing.T, h Harness) {
	ctx := testCtx(t)
	q := newQueue(t, h)
	const delay = 2 * time.Second

	sentAt := time.Now()
	late := send(t, ctx, q, "late", delay)
	now := send(t, ctx, q, "now", 0)

	m := receiveOne(t, ctx, q, hide, time.Second)
	if m.ID != now {
		t.Fatalf("first receive got %q, want the undelayed %q", m.ID, now)
	}
	m = receiveOne(t, ctx, q, hide, delay+2*slack)
	if m.ID != late {
		t.Fatalf("got %q, want the delayed %q", m.ID, late)
	}
	if d := time.Since(sentAt); d < delay-slack {
		t.Errorf("delayed message arrived %s after Send, delay was %s", d, delay)
	}
}

// testVisibilityExpiry: a message that is not deleted comes back after its
// visibility timeout, counted twice, under a new receipt.
func testVisibilityExpiry(t *testing.T, h Harness) {
	ctx := testCtx(t)
	q := newQueue(t, h)
	const visibility = 2 * time.Second
	id := send(t, ctx, q, "again", 0)

	first := receiveOne(t, ctx, q, visibility, time.Second)
	got := time.Now()
	if msgs := receive(t, ctx, q, 10, visibility, 0); len(msgs) != 0 {
		t.Fatalf("message in flight was delivered again at once: %v", ids(msgs))
	}
	second := receiveOne(t, ctx, q, visibility, visibility+2*slack)
	if d := time.Since(got); d < visibility-slack {
		t.Errorf("message came back %s after the receive, visibility was %s", d, visibility)
	}
	if second.ID != id {
		t.Errorf("got %q, want %q", second.ID, id)
	}
	if second.ReceiveCount != 2 {
		t.Errorf("ReceiveCount = %d, want 2", second.ReceiveCount)
	}
	if second.Receipt == first.Receipt {
		t.Errorf("second receive reused receipt %q", first.Receipt)
	}
	if string(second.Body) != "again" {
		t.Errorf("Body = %q", second.Body)
	}
}

// testStaleReceipt: the receipt of an earlier receive does not delete the
// message; the current one still works.
func testStaleReceipt(t *testing.T, h Harness) {
	ctx := testCtx(t)
	q := newQueue(t, h)
	id := send(t, ctx, q, "stale", 0)

	first := receiveOne(t, ctx, q, hide, time.Second)
	if err := q.ChangeVisibility(ctx, first.Receipt, 0); err != nil {
		t.Fatalf("ChangeVisibility(0): %v", err)
	}
	second := receiveOne(t, ctx, q, hide, 2*time.Second)
	if err := q.Delete(ctx, first.Receipt); err != nil && !errors.Is(err, queue.ErrInvalidReceipt) {
		t.Fatalf("Delete with a stale receipt: %v, want nil or ErrInvalidReceipt", err)
	}
	if err := q.ChangeVisibility(ctx, second.Receipt, 0); err != nil {
		t.Fatalf("ChangeVisibility with the current receipt after a stale Delete: %v", err)
	}
	third := receiveOne(t, ctx, q, hide, 2*time.Second)
	if third.ID != id || third.ReceiveCount != 3 {
		t.Errorf("got %q with count %d, want %q with count 3", third.ID, third.ReceiveCount, id)
	}
	if err := q.Delete(ctx, third.Receipt); err != nil {
		t.Errorf("Delete with the current receipt: %v", err)
	}
}

// testInvalidReceipt: a string that is no receipt is refused with
// ErrInvalidReceipt.
func testInvalidReceipt(t *testing.T, h Harness) {
	ctx := testCtx(t)
	q := newQueue(t, h)
	send(t, ctx, q, "x", 0)
	for _, r := range []string{"not-a-receipt", "", "01J00000000000000000000000.0000000000000000"} {
		if err := q.Delete(ctx, r); !errors.Is(err, queue.ErrInvalidReceipt) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidReceipt", r, err)
		}
		if err := q.ChangeVisibility(ctx, r, 0); !errors.Is(err, queue.ErrInvalidReceipt) {
			t.Errorf("ChangeVisibility(%q) = %v, want ErrInvalidReceipt", r, err)
		}
	}
	// The queued message is untouched.
	if m := receiveOne(t, ctx, q, hide, time.Second); string(m.Body) != "x" {
		t.Errorf("Body = %q", m.Body)
	}
}

// testDeleteAcks: a deleted message never comes back, even after its
// visibility timeout.
func testDeleteAcks(t *testing.T, h Harness) {
	ctx := testCtx(t)
	q := newQueue(t, h)
	send(t, ctx, q, "ack", 0)
	m := receiveOne(t, ctx, q, time.Second, time.Second)
	if err := q.Delete(ctx, m.Receipt); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	expectNone(t, ctx, q, time.Second+2*slack, "message was deleted")
}

// testChangeVisibilityZero: ChangeVisibility(0) makes a message in flight
// receivable at once.
func testChangeVisibilityZero(t *testing.T, h Harness) {
	ctx := testCtx(t)
	q := newQueue(t, h)
	id := send(t, ctx, q, "retry", 0)
	first := receiveOne(t, ctx, q, hide, time.Second)
	if err := q.ChangeVisibility(ctx, first.Receipt, 0); err != nil {
		t.Fatalf("ChangeVisibility(0): %v", err)
	}
	start := time.Now()
	m := receiveOne(t, ctx, q, hide, 3*time.Second)
	if d := time.Since(start); d > slack {
		t.Errorf("message made visible took %s to be received", d)
	}
	if m.ID != id || m.ReceiveCount != 2 {
		t.Errorf("got %q with count %d, want %q with count 2", m.ID, m.ReceiveCount, id)
	}
}

// testChangeVisibilityLonger: ChangeVisibility extends the hiding past the
// original timeout, and the message comes back after the new one.
func testChangeVisibilityLonger(t *testing.T, h Harness) {
	ctx := testCtx(t)
	q := newQueue(t, h)
	id := send(t, ctx, q, "later", 0)
	first := receiveOne(t, ctx, q, time.Second, time.Second)
	const longer = 4 * time.Second
	if err := q.ChangeVisibility(ctx, first.Receipt, longer); err != nil {
		t.Fatalf("ChangeVisibility(%s): %v", longer, err)
	}
	changed := time.Now()
	expectNone(t, ctx, q, time.Second+slack, "visibility was extended")
	m := receiveOne(t, ctx, q, hide, longer+2*slack)
	if d := time.Since(changed); d < longer-slack {
		t.Errorf("message came back %s after ChangeVisibility(%s)", d, longer)
	}
	if m.ID != id || m.ReceiveCount != 2 {
		t.Errorf("got %q with count %d, want %q with count 2", m.ID, m.ReceiveCount, id)
	}
}

// testDeadLetter: a message never deleted is delivered MaxReceives times,
// then lands in the dead-letter queue instead of a further delivery.
func testDeadLetter(t *testing.T, h Harness) {
	ctx := testCtx(t)
	const maxReceives = 2
	q, dlq := h.New(t, Spec{MaxReceives: maxReceives})
	if q == nil || dlq == nil {
		t.Fatal("harness returned a nil queue for a dead-letter spec")
	}
	id := send(t, ctx, q, "poison", 0)
	for n := 1; n <= maxReceives; n++ {
		m := receiveOne(t, ctx, q, hide, 2*time.Second)
		if m.ID != id || m.ReceiveCount != n {
			t.Fatalf("receive %d got %q with count %d", n, m.ID, m.ReceiveCount)
		}
		if err := q.ChangeVisibility(ctx, m.Receipt, 0); err != nil {
			t.Fatalf("ChangeVisibility(0): %v", err)
		}
	}
	expectNone(t, ctx, q, 2*time.Second, fmt.Sprintf("message was received %d times", maxReceives))
	m := receiveOne(t, ctx, dlq, hide, 2*time.Second)
	if string(m.Body) != "poison" {
		t.Errorf("dead-letter queue got body %q", m.Body)
	}
}

// testConcurrentConsumers: consumers in parallel never hold the same
// message at once and together receive every message.
func testConcurrentConsumers(t *testing.T, h Harness) {
	ctx := testCtx(t)
	q := newQueue(t, h)
	const total, senders, consumers = 50, 5, 8

	var mu sync.Mutex
	want := map[string]bool{}
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range total / senders {
				id, err := q.Send(ctx, fmt.Appendf(nil, "job %d/%d", s, i), 0)
				if err != nil {
					t.Errorf("Send: %v", err)
					return
				}
				mu.Lock()
				want[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	got := map[string]int{} // id -> consumer
	deadline := time.Now().Add(12 * time.Second)
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == total
	}
	for c := range consumers {
		wg.Go(func() {
			for !done() && time.Now().Before(deadline) {
				msgs, err := q.Receive(ctx, 10, hide, time.Second)
				if err != nil {
					t.Errorf("consumer %d: Receive: %v", c, err)
					return
				}
				for _, m := range msgs {
					mu.Lock()
					prev, dup := got[m.ID]
					got[m.ID] = c
					mu.Unlock()
					if dup {
						t.Errorf("consumer %d got %q while consumer %d held it", c, m.ID, prev)
					}
					if err := q.Delete(ctx, m.Receipt); err != nil {
						t.Errorf("consumer %d: Delete: %v", c, err)
					}
				}
			}
		})
	}
	wg.Wait()
	if len(got) != total {
		t.Errorf("consumers got %d distinct messages, want %d", len(got), total)
	}
	for id := range got {
		if !want[id] {
			t.Errorf("received %q, which was never sent", id)
		}
	}
}

// testCancelReceive: cancelling ctx ends a long poll promptly with the
// context's error; a Send with a dead ctx fails.
func testCancelReceive(t *testing.T, h Harness) {
	q := newQueue(t, h)
	ctx, cancel := context.WithCancel(testCtx(t))
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	msgs, err := q.Receive(ctx, 1, hide, 10*time.Second)
	d := time.Since(start)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Receive after cancel = %d messages, %v; want an error wrapping context.Canceled", len(msgs), err)
	}
	if d > 200*time.Millisecond+slack {
		t.Errorf("Receive returned %s after start, cancel was at 200ms", d)
	}
	if _, err := q.Send(ctx, []byte("too late"), 0); err == nil {
		t.Error("Send with a cancelled ctx returned nil")
	}
}
