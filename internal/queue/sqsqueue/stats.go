package sqsqueue

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Stats is SQS's approximate count of a queue's messages, the counterpart
// of fsqueue.Stats. SQS has no age of the oldest message among its queue
// attributes (ApproximateAgeOfOldestMessage is a CloudWatch metric only).
type Stats struct {
	Visible  int // ApproximateNumberOfMessages: receivable now
	InFlight int // ApproximateNumberOfMessagesNotVisible: received, not yet deleted
	Delayed  int // ApproximateNumberOfMessagesDelayed: waiting out their delay
}

// Stats reads the queue's approximate message counts. SQS updates them
// eventually (about a minute behind on AWS), so they suit metrics and
// alarms, not decisions about single messages.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	// In the order of Stats' fields.
	statsAttributes := []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages,
		types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
	}
	out, err := q.api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(q.url),
		AttributeNames: statsAttributes,
	})
	if err != nil {
		return Stats{}, q.opError(ctx, "stats of", err)
	}
	var n [3]int
	for i, name := range statsAttributes {
		v, ok := out.Attributes[string(name)]
		if !ok {
			return Stats{}, fmt.Errorf("sqsqueue: stats of %s: no %s in the reply", q.name, name)
		}
		if n[i], err = strconv.Atoi(v); err != nil {
			return Stats{}, fmt.Errorf("sqsqueue: stats of %s: %s: %w", q.name, name, err)
		}
	}
	return Stats{Visible: n[0], InFlight: n[1], Delayed: n[2]}, nil
}
