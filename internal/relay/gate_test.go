package relay

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// heldTransport records how many bytes it holds at once and waits for
// release before answering.
type heldTransport struct {
	held, peak atomic.Int64
	release    chan struct{}
}

func (h *heldTransport) Send(ctx context.Context, m *Message) (*Result, error) {
	n := h.held.Add(m.Size)
	for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
	}
	defer h.held.Add(-m.Size)
	select {
	case <-h.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return Uniform(m, "x", Reply{Status: "2.0.0"}), nil
}

func TestGateBoundsBytesInFlight(t *testing.T) {
	h := &heldTransport{release: make(chan struct{})}
	// Two transports under one gate share its budget.
	gt := NewGate(100 << 20)
	a, b := gt.Wrap(h), gt.Wrap(h)
	errs := make(chan error, 4)
	for i := range 4 { // 4 x 40 MiB against a 100 MiB budget: two at a time
		g := a
		if i%2 == 1 {
			g = b
		}
		go func() {
			_, err := g.Send(context.Background(), &Message{Size: 40 << 20, To: []Rcpt{{Addr: "a@x"}}})
			errs <- err
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.held.Load() != 80<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("held %d, want two messages", h.held.Load())
		}
		time.Sleep(time.Millisecond)
	}
	for range 4 {
		h.release <- struct{}{}
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if p := h.peak.Load(); p != 80<<20 {
		t.Fatalf("peak %d bytes in flight, want 80 MiB", p)
	}
}

// A message larger than the whole budget still goes, alone; a send that
// cannot get its share before its deadline is an error (retried), not a
// reply.
func TestGateLargeMessageAndDeadline(t *testing.T) {
	h := &heldTransport{release: make(chan struct{}, 1)}
	g := NewGate(10 << 20).Wrap(h)
	done := make(chan error, 1)
	go func() {
		_, err := g.Send(context.Background(), &Message{Size: 150 << 20, To: []Rcpt{{Addr: "a@x"}}})
		done <- err
	}()
	for h.held.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := g.Send(ctx, &Message{Size: 1, To: []Rcpt{{Addr: "b@x"}}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second send while the budget is held: %v", err)
	}
	h.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if NewGate(0).Wrap(h) != Transport(h) {
		t.Error("a zero budget must not wrap")
	}
}
