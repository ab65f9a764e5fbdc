package relay

import (
	"context"
	"fmt"

	"golang.org/x/sync/semaphore"
)

// Gate bounds the bytes of the messages the transports it wraps hold at
// once: transports that read a whole message into memory (the Graph and
// Gmail APIs take it in one request) would otherwise, with several large
// messages in flight, exceed a Lambda function's memory and lose the
// whole batch's progress. Each send holds its Message.Size (at least 64
// KiB, at most the budget, so one message larger than the budget still
// goes, alone). A send that cannot get its share before its context ends
// is this side's fault: an error, retried. A nil *Gate wraps nothing.
type Gate struct {
	budget int64
	sem    *semaphore.Weighted
}

// NewGate returns a Gate of budget bytes, or nil for a budget of 0 or less.
func NewGate(budget int64) *Gate {
	if budget <= 0 {
		return nil
	}
	return &Gate{budget: budget, sem: semaphore.NewWeighted(budget)}
}

// Wrap returns t sending under g.
func (g *Gate) Wrap(t Transport) Transport {
	if g == nil {
		return t
	}
	return &gate{Gate: g, t: t}
}

type gate struct {
	*Gate
	t Transport
}

// minShare is what a message of unknown or small size holds: the cost of
// a send beyond its bytes.
const minShare = 64 << 10

func (g *gate) Send(ctx context.Context, m *Message) (*Result, error) {
	n := min(max(m.Size, minShare), g.budget)
	if err := g.sem.Acquire(ctx, n); err != nil {
		return nil, fmt.Errorf("relay: waiting for memory to send a %d-byte message: %w", m.Size, err)
	}
	defer g.sem.Release(n)
	return g.t.Send(ctx, m)
}
