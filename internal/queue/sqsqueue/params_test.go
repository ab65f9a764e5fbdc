package sqsqueue

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

const testURL = "https://sqs.us-east-1.amazonaws.com/123456789012/postern-inbound"

// These tests pin how the port's durations and counts become SQS's whole
// seconds and limits, which a stand-in cannot show (it takes what it gets).

func TestSendParameters(t *testing.T) {
	t.Parallel()
	cases := []struct {
		delay time.Duration
		want  int32
	}{
		{0, 0},
		{time.Nanosecond, 1},
		{time.Second, 1},
		{1200 * time.Millisecond, 2},
		{15 * time.Minute, 900},
		{15*time.Minute + time.Millisecond, 900},
		{time.Hour, 900},
	}
	for _, c := range cases {
		var got *sqs.SendMessageInput
		q := New(&fakeAPI{send: func(in *sqs.SendMessageInput) (*sqs.SendMessageOutput, error) {
			got = in
			return &sqs.SendMessageOutput{MessageId: aws.String("id-1")}, nil
		}}, testURL, Options{})
		id, err := q.Send(t.Context(), []byte(`{"v":1}`), c.delay)
		if err != nil || id != "id-1" {
			t.Fatalf("Send(delay %s) = %q, %v", c.delay, id, err)
		}
		if got.DelaySeconds != c.want {
			t.Errorf("delay %s sent as DelaySeconds %d, want %d", c.delay, got.DelaySeconds, c.want)
		}
		if aws.ToString(got.QueueUrl) != testURL || aws.ToString(got.MessageBody) != `{"v":1}` || got.MessageAttributes != nil {
			t.Errorf("sent %s %q %v, want the URL, the body as it is and no attributes",
				aws.ToString(got.QueueUrl), aws.ToString(got.MessageBody), got.MessageAttributes)
		}
	}
}

func TestSendBinaryBody(t *testing.T) {
	t.Parallel()
	var got *sqs.SendMessageInput
	q := New(&fakeAPI{send: func(in *sqs.SendMessageInput) (*sqs.SendMessageOutput, error) {
		got = in
		return &sqs.SendMessageOutput{MessageId: aws.String("id")}, nil
	}}, testURL, Options{})
	if _, err := q.Send(t.Context(), []byte{0, 0xff}, 0); err != nil {
		t.Fatal(err)
	}
	a := got.MessageAttributes[BodyEncodingAttribute]
	if aws.ToString(got.MessageBody) != "AP8=" || aws.ToString(a.StringValue) != EncodingBase64 || aws.ToString(a.DataType) != "String" {
		t.Errorf("sent %q with %s=%s (%s), want AP8= with base64 (String)",
			aws.ToString(got.MessageBody), BodyEncodingAttribute, aws.ToString(a.StringValue), aws.ToString(a.DataType))
	}
}

func TestSendRefuses(t *testing.T) {
	t.Parallel()
	q := New(&fakeAPI{}, testURL, Options{}) // any call fails with errUnexpected
	if _, err := q.Send(t.Context(), []byte("x"), -time.Second); err == nil || errors.Is(err, errUnexpected) {
		t.Errorf("Send(negative delay) = %v, want a refusal without a call", err)
	}
	if _, err := q.Send(t.Context(), nil, 0); err == nil || errors.Is(err, errUnexpected) {
		t.Errorf("Send(empty) = %v, want a refusal without a call", err)
	}
	noID := New(&fakeAPI{send: func(*sqs.SendMessageInput) (*sqs.SendMessageOutput, error) {
		return &sqs.SendMessageOutput{}, nil
	}}, testURL, Options{})
	if _, err := noID.Send(t.Context(), []byte("x"), 0); err == nil {
		t.Error("Send with no message id in the reply returned nil")
	}
}

func TestReceiveParameters(t *testing.T) {
	t.Parallel()
	cases := []struct {
		max              int
		visibility, wait time.Duration
		wantMax          int32
		wantVis          int32
		wantWait         int32
	}{
		{1, 30 * time.Second, 0, 1, 30, 0},
		{10, time.Second, 20 * time.Second, 10, 1, 20},
		{50, 0, 25 * time.Second, 10, 1, 20},
		{3, 1500 * time.Millisecond, 300 * time.Millisecond, 3, 2, 1},
		{1, 13 * time.Hour, time.Hour, 1, 43200, 20},
	}
	for _, c := range cases {
		var got *sqs.ReceiveMessageInput
		q := New(&fakeAPI{receive: func(in *sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error) {
			got = in
			return &sqs.ReceiveMessageOutput{}, nil
		}}, testURL, Options{})
		msgs, err := q.Receive(t.Context(), c.max, c.visibility, c.wait)
		if err != nil || msgs == nil || len(msgs) != 0 {
			t.Fatalf("Receive = %#v, %v; want an empty, non-nil slice", msgs, err)
		}
		if got.MaxNumberOfMessages != c.wantMax || got.VisibilityTimeout != c.wantVis || got.WaitTimeSeconds != c.wantWait {
			t.Errorf("Receive(%d, %s, %s) sent max %d, visibility %d, wait %d; want %d, %d, %d",
				c.max, c.visibility, c.wait, got.MaxNumberOfMessages, got.VisibilityTimeout, got.WaitTimeSeconds,
				c.wantMax, c.wantVis, c.wantWait)
		}
		for _, a := range []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp,
		} {
			if !slices.Contains(got.MessageSystemAttributeNames, a) {
				t.Errorf("Receive did not ask for %s", a)
			}
		}
		if !slices.Contains(got.MessageAttributeNames, BodyEncodingAttribute) {
			t.Errorf("Receive did not ask for the %s attribute", BodyEncodingAttribute)
		}
	}
	q := New(&fakeAPI{}, testURL, Options{})
	for _, bad := range []struct {
		max       int
		vis, wait time.Duration
	}{{0, time.Second, 0}, {1, -time.Second, 0}, {1, time.Second, -time.Second}} {
		if _, err := q.Receive(t.Context(), bad.max, bad.vis, bad.wait); err == nil || errors.Is(err, errUnexpected) {
			t.Errorf("Receive(%d, %s, %s) = %v, want a refusal without a call", bad.max, bad.vis, bad.wait, err)
		}
	}
}

// TestReceiveConversion: attributes become ReceiveCount and SentAt, bodies
// are decoded, and a message that cannot be decoded is left out and logged
// without failing the rest.
func TestReceiveConversion(t *testing.T) {
	t.Parallel()
	sent := time.UnixMilli(1_750_000_000_123)
	enc := func(v string) map[string]types.MessageAttributeValue {
		return map[string]types.MessageAttributeValue{BodyEncodingAttribute: {DataType: aws.String("String"), StringValue: aws.String(v)}}
	}
	out := &sqs.ReceiveMessageOutput{Messages: []types.Message{
		{MessageId: aws.String("a"), ReceiptHandle: aws.String("ra"), Body: aws.String(`{"v":1}`), Attributes: map[string]string{
			"ApproximateReceiveCount": "3", "SentTimestamp": "1750000000123",
		}},
		{MessageId: aws.String("b"), ReceiptHandle: aws.String("rb"), Body: aws.String("AP8="), MessageAttributes: enc("base64")},
		{MessageId: aws.String("bad64"), ReceiptHandle: aws.String("rc"), Body: aws.String("!!"), MessageAttributes: enc("base64")},
		{MessageId: aws.String("gzip"), ReceiptHandle: aws.String("rd"), Body: aws.String("x"), MessageAttributes: enc("gzip")},
		{MessageId: aws.String("nohandle"), Body: aws.String("x")},
	}}
	var log bytes.Buffer
	q := New(&fakeAPI{receive: func(*sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error) { return out, nil }},
		testURL, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	msgs, err := q.Receive(t.Context(), 10, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want the 2 decodable ones: %+v", len(msgs), msgs)
	}
	a, b := msgs[0], msgs[1]
	if a.ID != "a" || a.Receipt != "ra" || string(a.Body) != `{"v":1}` || a.ReceiveCount != 3 || !a.SentAt.Equal(sent) {
		t.Errorf("first = %+v", a)
	}
	if b.ID != "b" || !bytes.Equal(b.Body, []byte{0, 0xff}) || b.ReceiveCount != 1 || !b.SentAt.IsZero() {
		t.Errorf("second = %+v (no attributes: count 1, no sent time)", b)
	}
	for _, id := range []string{"bad64", "gzip"} {
		if !strings.Contains(log.String(), "job_id="+id) {
			t.Errorf("no warning about %s in the log:\n%s", id, log.String())
		}
	}
	if strings.Contains(log.String(), `{"v":1}`) {
		t.Error("the log carries a message body")
	}
}

func TestChangeVisibilityParameters(t *testing.T) {
	t.Parallel()
	cases := []struct {
		d    time.Duration
		want int32
	}{{0, 0}, {time.Millisecond, 1}, {1500 * time.Millisecond, 2}, {15 * time.Minute, 900}, {24 * time.Hour, 43200}}
	for _, c := range cases {
		var got *sqs.ChangeMessageVisibilityInput
		q := New(&fakeAPI{change: func(in *sqs.ChangeMessageVisibilityInput) (*sqs.ChangeMessageVisibilityOutput, error) {
			got = in
			return &sqs.ChangeMessageVisibilityOutput{}, nil
		}}, testURL, Options{})
		if err := q.ChangeVisibility(t.Context(), "r", c.d); err != nil {
			t.Fatal(err)
		}
		if got.VisibilityTimeout != c.want || aws.ToString(got.ReceiptHandle) != "r" {
			t.Errorf("ChangeVisibility(%s) sent %d for %q, want %d", c.d, got.VisibilityTimeout, aws.ToString(got.ReceiptHandle), c.want)
		}
	}
	q := New(&fakeAPI{}, testURL, Options{})
	if err := q.ChangeVisibility(t.Context(), "r", -time.Second); err == nil || errors.Is(err, errUnexpected) {
		t.Errorf("ChangeVisibility(negative) = %v, want a refusal without a call", err)
	}
}

// TestCancelledCallWrapsContext: whatever the SDK returns once ctx has
// ended, the error wraps ctx's error.
func TestCancelledCallWrapsContext(t *testing.T) {
	t.Parallel()
	transport := errors.New("read tcp: use of closed network connection")
	q := New(&fakeAPI{receive: func(*sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error) {
		return nil, transport
	}}, testURL, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := q.Receive(ctx, 1, time.Second, time.Second)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, transport) {
		t.Errorf("Receive = %v, want it to wrap both context.Canceled and the SDK's error", err)
	}
	_, err = q.Receive(t.Context(), 1, time.Second, time.Second)
	if errors.Is(err, context.Canceled) || !errors.Is(err, transport) {
		t.Errorf("Receive with a live ctx = %v, want the SDK's error alone", err)
	}
}

func TestStatsReply(t *testing.T) {
	t.Parallel()
	reply := func(attrs map[string]string) *Queue {
		return New(&fakeAPI{attrs: func(in *sqs.GetQueueAttributesInput) (*sqs.GetQueueAttributesOutput, error) {
			return &sqs.GetQueueAttributesOutput{Attributes: attrs}, nil
		}}, testURL, Options{})
	}
	s, err := reply(map[string]string{
		"ApproximateNumberOfMessages": "7", "ApproximateNumberOfMessagesNotVisible": "2", "ApproximateNumberOfMessagesDelayed": "1",
	}).Stats(t.Context())
	if err != nil || s != (Stats{Visible: 7, InFlight: 2, Delayed: 1}) {
		t.Errorf("Stats = %+v, %v", s, err)
	}
	if _, err := reply(map[string]string{"ApproximateNumberOfMessages": "7"}).Stats(t.Context()); err == nil {
		t.Error("Stats with attributes missing returned nil")
	}
	if _, err := reply(map[string]string{
		"ApproximateNumberOfMessages": "many", "ApproximateNumberOfMessagesNotVisible": "2", "ApproximateNumberOfMessagesDelayed": "1",
	}).Stats(t.Context()); err == nil {
		t.Error("Stats with a non-number returned nil")
	}
}

func TestNameFromURL(t *testing.T) {
	t.Parallel()
	if n := New(&fakeAPI{}, testURL, Options{}).Name(); n != "postern-inbound" {
		t.Errorf("Name = %q", n)
	}
	if n := New(&fakeAPI{}, testURL, Options{Name: "inbound"}).Name(); n != "inbound" {
		t.Errorf("Name = %q", n)
	}
}
