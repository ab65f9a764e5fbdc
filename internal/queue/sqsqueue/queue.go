package sqsqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/postern/postern/internal/queue"
)

// API is the part of the SQS client a Queue calls. *sqs.Client has it;
// tests wrap or fake it.
type API interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

var (
	_ API         = (*sqs.Client)(nil)
	_ queue.Queue = (*Queue)(nil)
)

// SQS's limits, which durations are clamped to.
const (
	maxDelay      = 15 * time.Minute
	maxWait       = 20 * time.Second
	maxVisibility = 12 * time.Hour
	maxBatch      = 10
)

// Options tunes a Queue. The zero value is ready to use.
type Options struct {
	// Name names the queue in errors and logs. Default: the last segment of
	// the queue URL, which is the SQS queue name.
	Name string
	// Logger gets a warning for each received message that cannot be
	// decoded (see Receive). Default: discard.
	Logger *slog.Logger
}

// Queue is one SQS queue, named by its URL.
type Queue struct {
	api  API
	url  string
	name string
	log  *slog.Logger
}

// New returns the queue at queueURL reached through client.
func New(client API, queueURL string, opts Options) *Queue {
	name := opts.Name
	if name == "" {
		name = queueURL[strings.LastIndexByte(queueURL, '/')+1:]
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Queue{api: client, url: queueURL, name: name, log: log}
}

// Name is the queue's name, as used in errors.
func (q *Queue) Name() string { return q.name }

// URL is the queue's URL.
func (q *Queue) URL() string { return q.url }

// Send sends body, receivable after delay (rounded up to whole seconds,
// at most 15 minutes; see the package doc). With no delay, the queue's own
// DelaySeconds applies, 0 unless the queue was configured otherwise. SQS
// needs a body of at least one byte, so an empty body is refused.
func (q *Queue) Send(ctx context.Context, body []byte, delay time.Duration) (string, error) {
	if delay < 0 {
		return "", fmt.Errorf("sqsqueue: send to %s: negative delay %s", q.name, delay)
	}
	if len(body) == 0 {
		return "", fmt.Errorf("sqsqueue: send to %s: empty body (SQS needs at least one byte)", q.name)
	}
	text, attrs := encodeBody(body)
	out, err := q.api.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:          aws.String(q.url),
		MessageBody:       aws.String(text),
		MessageAttributes: attrs,
		DelaySeconds:      seconds(delay, maxDelay),
	})
	if err != nil {
		return "", q.opError(ctx, "send to", err)
	}
	if out.MessageId == nil || *out.MessageId == "" {
		return "", fmt.Errorf("sqsqueue: send to %s: no message id in the reply", q.name)
	}
	return *out.MessageId, nil
}

// Receive long-polls for up to maxMsgs messages (at most 10) and hides those it
// gets for visibility. wait and visibility are rounded up to whole seconds
// and clamped to 20 s and 12 h; a visibility of 0 becomes 1 s, the least SQS
// can be asked for. A wait of 0 is not sent, so the queue's own
// ReceiveMessageWaitTimeSeconds applies (0 unless configured otherwise).
//
// A message whose body cannot be decoded (an unknown BodyEncodingAttribute,
// bad base64) is left out with a logged warning rather than failing the
// others: it stays hidden, comes back after its visibility timeout, and
// reaches the dead-letter queue once the redrive policy's count is used up.
func (q *Queue) Receive(ctx context.Context, maxMsgs int, visibility, wait time.Duration) ([]queue.Message, error) {
	if maxMsgs < 1 {
		return nil, fmt.Errorf("sqsqueue: receive from %s: max %d, want at least 1", q.name, maxMsgs)
	}
	if visibility < 0 || wait < 0 {
		return nil, fmt.Errorf("sqsqueue: receive from %s: negative visibility %s or wait %s", q.name, visibility, wait)
	}
	out, err := q.api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(q.url),
		MaxNumberOfMessages: int32(min(maxMsgs, maxBatch)),
		VisibilityTimeout:   max(seconds(visibility, maxVisibility), 1),
		WaitTimeSeconds:     seconds(wait, maxWait),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
		},
		MessageAttributeNames: []string{BodyEncodingAttribute},
	})
	if err != nil {
		return nil, q.opError(ctx, "receive from", err)
	}
	msgs := make([]queue.Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		msg, err := fromSQS(m)
		if err != nil {
			q.log.Warn("undecodable message left for redrive",
				slog.String("queue", q.name), slog.String("job_id", aws.ToString(m.MessageId)),
				slog.String("error", err.Error()))
			continue
		}
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

// Delete deletes a received message. SQS accepts a stale receipt (from an
// earlier receive of the same message) without deleting anything; a
// receipt that is no receipt at all fails with queue.ErrInvalidReceipt.
func (q *Queue) Delete(ctx context.Context, receipt string) error {
	if receipt == "" {
		return fmt.Errorf("sqsqueue: delete from %s: empty receipt: %w", q.name, queue.ErrInvalidReceipt)
	}
	_, err := q.api.DeleteMessage(ctx, &sqs.DeleteMessageInput{
		QueueUrl:      aws.String(q.url),
		ReceiptHandle: aws.String(receipt),
	})
	if err != nil {
		return q.receiptOpError(ctx, "delete from", err)
	}
	return nil
}

// ChangeVisibility hides a received message for d from now (rounded up to
// whole seconds, at most 12 h; 0 makes it visible at once). A receipt of a
// message no longer in flight under it fails with queue.ErrInvalidReceipt.
func (q *Queue) ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("sqsqueue: change visibility in %s: negative duration %s", q.name, d)
	}
	if receipt == "" {
		return fmt.Errorf("sqsqueue: change visibility in %s: empty receipt: %w", q.name, queue.ErrInvalidReceipt)
	}
	_, err := q.api.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(q.url),
		ReceiptHandle:     aws.String(receipt),
		VisibilityTimeout: seconds(d, maxVisibility),
	})
	if err != nil {
		return q.receiptOpError(ctx, "change visibility in", err)
	}
	return nil
}

// fromSQS turns a received SQS message into the port's form.
func fromSQS(m types.Message) (queue.Message, error) {
	if m.MessageId == nil || m.ReceiptHandle == nil {
		return queue.Message{}, errors.New("message without id or receipt handle")
	}
	var encoding string
	if a, ok := m.MessageAttributes[BodyEncodingAttribute]; ok {
		encoding = aws.ToString(a.StringValue)
	}
	body, err := DecodeBody(aws.ToString(m.Body), encoding)
	if err != nil {
		return queue.Message{}, err
	}
	msg := queue.Message{
		ID:           *m.MessageId,
		Body:         body,
		Receipt:      *m.ReceiptHandle,
		ReceiveCount: 1, // it has been received at least now
	}
	if n, err := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]); err == nil && n > 0 {
		msg.ReceiveCount = n
	}
	if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		msg.SentAt = time.UnixMilli(ms)
	}
	return msg, nil
}

// seconds rounds d up to whole seconds, at most limit.
func seconds(d, limit time.Duration) int32 {
	d = min(d, limit)
	return int32((d + time.Second - 1) / time.Second)
}
