package awse2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/postern/postern/internal/queue/sqsqueue"
)

// waitForMessage receives one message from a queue, failing t after d.
func waitForMessage(t *testing.T, st *stack, name string, d time.Duration) types.Message {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		msgs, err := st.receive(t.Context(), name, 1, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) > 0 {
			return msgs[0]
		}
	}
	t.Fatalf("no message in %s within %s", name, d)
	return types.Message{}
}

// body is a received message's body as it was sent.
func body(t *testing.T, m types.Message) []byte {
	t.Helper()
	var enc string
	if v, ok := m.MessageAttributes[sqsqueue.BodyEncodingAttribute]; ok {
		enc = aws.ToString(v.StringValue)
	}
	b, err := sqsqueue.DecodeBody(aws.ToString(m.Body), enc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// collect receives until it holds n messages, failing t after 15 s or on
// more than n.
func collect(t *testing.T, st *stack, name string, n int) []types.Message {
	t.Helper()
	var got []types.Message
	for deadline := time.Now().Add(15 * time.Second); len(got) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("received %d messages from %s, want %d", len(got), name, n)
		}
		msgs, err := st.receive(t.Context(), name, 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msgs...)
	}
	if len(got) != n {
		t.Fatalf("received %d messages from %s, want %d", len(got), name, n)
	}
	return got
}

// sorted returns s in order, for comparing sets of ids.
func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

// depth is the number of messages in a queue, visible or in flight.
func (st *stack) depth(t testing.TB, name string) int {
	t.Helper()
	out, err := st.sqs.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(st.queues[name].url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible, types.QueueAttributeNameApproximateNumberOfMessagesDelayed},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes(%s): %v", name, err)
	}
	n := 0
	for _, v := range out.Attributes {
		i, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("queue %s attribute %q: %v", name, v, err)
		}
		n += i
	}
	return n
}

// wantEmpty fails unless every named queue is empty.
func (st *stack) wantEmpty(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		if n := st.depth(t, name); n != 0 {
			t.Errorf("queue %s holds %d messages, want none", name, n)
		}
	}
}

// receive takes up to max messages from a queue, waiting up to wait for
// the first, with every attribute.
func (st *stack) receive(ctx context.Context, name string, max int32, wait time.Duration) ([]types.Message, error) {
	out, err := st.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(st.queues[name].url),
		MaxNumberOfMessages:         max,
		WaitTimeSeconds:             int32(wait / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		return nil, fmt.Errorf("receive from %s: %w", name, err)
	}
	return out.Messages, nil
}
