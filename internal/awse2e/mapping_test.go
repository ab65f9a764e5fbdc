package awse2e

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/postern/postern/internal/lambdart"
	"github.com/postern/postern/internal/standin"
)

// mapping does what Lambda's SQS event source mapping does with
// ReportBatchItemFailures: receive a batch, invoke the function with it as
// an SQS event, and delete the records the response does not list as
// failed. A failed invocation deletes nothing: the whole batch comes back
// after the visibility timeout.
type mapping struct {
	sqs   *sqs.Client
	queue queueRef
	fn    *lambdart.Runtime
	// batchSize is BatchSize (at most 10 without a window); window is
	// MaximumBatchingWindowInSeconds: how long to keep receiving to fill a
	// batch once the first record is in.
	batchSize int
	window    time.Duration
	graceful  bool // see start
}

// start polls until t ends. With graceful set it then lets the poll in
// progress finish instead of cancelling it: fauxqs hands messages that
// arrive later to a long poll whose client has gone, leaving them in
// flight for the visibility timeout, which matters when the queue is used
// again (the benchmark's rounds).
func (m *mapping) start(t testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil && !stop.Load() {
			if _, _, err := m.poll(ctx); err != nil && ctx.Err() == nil {
				t.Logf("event source mapping %s: %v", m.queue.arn, err)
				time.Sleep(200 * time.Millisecond)
			}
		}
	})
	t.Cleanup(func() {
		if m.graceful {
			stop.Store(true)
		} else {
			cancel()
		}
		wg.Wait()
		cancel()
	})
}

// poll handles one batch, waiting up to a second for its first record
// and then up to the batching window for the rest. It returns the batch
// and the ids the function reported as failed.
func (m *mapping) poll(ctx context.Context) ([]types.Message, []string, error) {
	size := cmp.Or(m.batchSize, 10)
	var msgs []types.Message
	var until time.Time
	for len(msgs) < size {
		wait := int32(1)
		if len(msgs) > 0 {
			left := time.Until(until)
			if left <= 0 {
				break
			}
			wait = int32(min(left, 20*time.Second) / time.Second) // 0: what is there now
		}
		out, err := m.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(m.queue.url),
			MaxNumberOfMessages:         int32(min(size-len(msgs), 10)),
			WaitTimeSeconds:             wait,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
			MessageAttributeNames:       []string{"All"},
		})
		if err != nil {
			if len(msgs) == 0 {
				return nil, nil, err
			}
			break // deliver what is in hand
		}
		if len(msgs) == 0 {
			if len(out.Messages) == 0 {
				return nil, nil, nil
			}
			until = time.Now().Add(m.window)
		}
		msgs = append(msgs, out.Messages...)
		if m.window <= 0 {
			break
		}
	}
	failed, err := m.deliver(ctx, msgs)
	return msgs, failed, err
}

// deliver invokes the function with msgs and deletes those it did not
// report as failed; it returns the failed ids. A function error (or a
// response naming a record not in the batch, which Lambda also treats as
// the whole batch failing) deletes nothing.
func (m *mapping) deliver(ctx context.Context, msgs []types.Message) ([]string, error) {
	payload, err := json.Marshal(m.event(msgs))
	if err != nil {
		return nil, err
	}
	out, err := m.fn.Invoke(ctx, payload)
	if err != nil {
		return nil, fmt.Errorf("invoke: %w", err)
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("function response %q: %w", out, err)
	}
	inBatch := map[string]bool{}
	for _, msg := range msgs {
		inBatch[aws.ToString(msg.MessageId)] = true
	}
	failed := map[string]bool{}
	var ids []string
	for _, f := range resp.BatchItemFailures {
		if !inBatch[f.ItemIdentifier] {
			return nil, fmt.Errorf("response names %q, not in the batch: the whole batch fails", f.ItemIdentifier)
		}
		failed[f.ItemIdentifier] = true
		ids = append(ids, f.ItemIdentifier)
	}
	var entries []types.DeleteMessageBatchRequestEntry
	for i, msg := range msgs {
		if !failed[aws.ToString(msg.MessageId)] {
			entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: msg.ReceiptHandle})
		}
	}
	if len(entries) > 0 {
		del, err := m.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(m.queue.url), Entries: entries})
		if err != nil {
			return ids, fmt.Errorf("delete: %w", err)
		}
		if len(del.Failed) > 0 {
			return ids, errors.New("delete: " + aws.ToString(del.Failed[0].Message))
		}
	}
	return ids, nil
}

// event is the SQS event Lambda builds from received messages.
func (m *mapping) event(msgs []types.Message) events.SQSEvent {
	var ev events.SQSEvent
	for _, msg := range msgs {
		attrs := map[string]events.SQSMessageAttribute{}
		for k, v := range msg.MessageAttributes {
			attrs[k] = events.SQSMessageAttribute{
				DataType:         aws.ToString(v.DataType),
				StringValue:      v.StringValue,
				BinaryValue:      v.BinaryValue,
				StringListValues: v.StringListValues,
				BinaryListValues: v.BinaryListValues,
			}
		}
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId:              aws.ToString(msg.MessageId),
			ReceiptHandle:          aws.ToString(msg.ReceiptHandle),
			Body:                   aws.ToString(msg.Body),
			Md5OfBody:              aws.ToString(msg.MD5OfBody),
			Md5OfMessageAttributes: aws.ToString(msg.MD5OfMessageAttributes),
			Attributes:             msg.Attributes,
			MessageAttributes:      attrs,
			EventSourceARN:         m.queue.arn,
			EventSource:            "aws:sqs",
			AWSRegion:              standin.Region,
		})
	}
	return ev
}
