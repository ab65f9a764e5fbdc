// Package queue is the port to Postern's job queues (inbound, webhook, relay,
// dsn). Drivers: fsqueue (durable on local disk) and sqsqueue (Amazon SQS).
//
// Delivery is at least once, as in SQS: a received message is hidden for its
// visibility timeout and comes back unless it is deleted; every receive
// raises its receive count; after the queue's maximum receive count it is
// moved to the dead-letter queue instead of being delivered again.
package queue

import (
	"context"
	"errors"
	"time"
)

// ErrInvalidReceipt is returned (wrapped) by Delete and ChangeVisibility when
// the receipt does not name a message currently in flight under it.
var ErrInvalidReceipt = errors.New("queue: invalid receipt")

// Queue is one named queue.
type Queue interface {
	// Send stores body durably and makes it receivable after delay. When Send
	// returns nil the message survives a crash of any process.
	Send(ctx context.Context, body []byte, delay time.Duration) (id string, err error)

	// Receive returns up to max visible messages and hides each of them for
	// visibility. If none is visible it waits up to wait for one (long poll),
	// returning an empty slice, not an error, when none came.
	Receive(ctx context.Context, max int, visibility, wait time.Duration) ([]Message, error)

	// Delete acknowledges a received message.
	Delete(ctx context.Context, receipt string) error

	// ChangeVisibility hides a received message for d from now (0 makes it
	// visible at once): the way a consumer retries later with backoff.
	ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error
}

// Message is one received message.
type Message struct {
	ID           string
	Body         []byte
	Receipt      string // names this receive; stale after the message is received again
	ReceiveCount int    // 1 on the first receive
	SentAt       time.Time
}
