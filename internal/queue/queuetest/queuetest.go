// Package queuetest is the conformance suite every queue.Queue driver runs:
// fsqueue on local disk, and the SQS adapter against an SQS-compatible server.
// Timings are whole seconds with about a second of slack, as SQS needs.
package queuetest

import (
	"sync"
	"testing"

	"github.com/postern/postern/internal/queue"
)

// Spec asks a harness for a queue with some policy.
type Spec struct {
	// MaxReceives > 0 asks for a queue whose messages go to the returned
	// dead-letter queue instead of being delivered a (MaxReceives+1)th time.
	// With 0 the queue has no dead-letter queue and dlq may be nil.
	MaxReceives int
}

// Harness builds queues for the suite.
type Harness struct {
	// New returns a fresh, empty queue and, when spec.MaxReceives > 0, its
	// dead-letter queue, both used by one test only. Tear-down goes in
	// t.Cleanup. New is called from parallel tests.
	New func(t *testing.T, spec Spec) (q, dlq queue.Queue)
}

// Run runs every case as a subtest of t, each on its own queues, all at
// once: the cases spend their time waiting on clocks, not on the CPU, so
// they are started together from goroutines (which t.Run allows) rather
// than with t.Parallel, whose -parallel limit (GOMAXPROCS by default) would
// run them a couple at a time. The suite takes about as long as its slowest
// case, a few seconds.
//
// Beyond what the queue package documents, it holds drivers to this:
// Receive ends with an error wrapping context.Canceled when its ctx is
// cancelled; Delete and ChangeVisibility with a receipt that is not one
// return an error wrapping queue.ErrInvalidReceipt; a stale receipt (from
// an earlier receive) never deletes the message, whether or not it is
// reported, as SQS accepts it silently.
func Run(t *testing.T, h Harness) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"RoundTrip", testRoundTrip},
		{"EmptyWait", testEmptyWait},
		{"LongPollWakes", testLongPollWakes},
		{"MaxRespected", testMaxRespected},
		{"Delay", testDelay},
		{"VisibilityExpiry", testVisibilityExpiry},
		{"StaleReceipt", testStaleReceipt},
		{"InvalidReceipt", testInvalidReceipt},
		{"DeleteAcks", testDeleteAcks},
		{"ChangeVisibilityZero", testChangeVisibilityZero},
		{"ChangeVisibilityLonger", testChangeVisibilityLonger},
		{"DeadLetter", testDeadLetter},
		{"ConcurrentConsumers", testConcurrentConsumers},
		{"CancelReceive", testCancelReceive},
	}
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Go(func() {
			t.Run(c.name, func(t *testing.T) { c.fn(t, h) })
		})
	}
	wg.Wait()
}
