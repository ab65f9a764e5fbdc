package sqsqueue_test

import (
	"testing"

	"github.com/postern/postern/internal/queue"
	"github.com/postern/postern/internal/queue/queuetest"
	"github.com/postern/postern/internal/queue/sqsqueue"
)

// TestConformance runs the queue suite against the SQS adapter on the
// stand-in, every case on queues of its own; the dead-letter case on a queue
// whose RedrivePolicy the server enforces.
func TestConformance(t *testing.T) {
	t.Parallel()
	client := newClient(t)
	queuetest.Run(t, queuetest.Harness{New: func(t *testing.T, spec queuetest.Spec) (queue.Queue, queue.Queue) {
		api := &receiptCheck{API: client}
		opts := sqsqueue.Options{Logger: testLogger(t)}
		if spec.MaxReceives == 0 {
			return sqsqueue.New(api, createQueue(t, client, "", nil), opts), nil
		}
		url, dlqURL := createQueueWithDLQ(t, client, spec.MaxReceives)
		return sqsqueue.New(api, url, opts), sqsqueue.New(api, dlqURL, opts)
	}})
}
