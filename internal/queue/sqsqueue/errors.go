package sqsqueue

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/postern/postern/internal/queue"
)

// opError wraps err from the SQS call for op. When ctx has ended it makes
// sure the result also wraps ctx's error, which the SDK does not always
// keep in the chain, so callers can tell a cancelled call from a failed one.
func (q *Queue) opError(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("sqsqueue: %s %s: %w: %w", op, q.name, cerr, err)
	}
	return fmt.Errorf("sqsqueue: %s %s: %w", op, q.name, err)
}

// receiptOpError is opError for calls that take a receipt: an error saying
// the receipt names no message in flight also wraps queue.ErrInvalidReceipt.
func (q *Queue) receiptOpError(ctx context.Context, op string, err error) error {
	if badReceipt(err) {
		return fmt.Errorf("sqsqueue: %s %s: %w: %w", op, q.name, queue.ErrInvalidReceipt, err)
	}
	return q.opError(ctx, op, err)
}

// queryCodePrefix starts the error codes SQS reports in its query-protocol
// compatible form (the x-amzn-query-error header, which the SDK prefers
// when present), e.g. AWS.SimpleQueueService.MessageNotInflight.
const queryCodePrefix = "AWS.SimpleQueueService."

// badReceipt reports whether err is SQS saying a receipt handle is not
// valid, or names no message in flight under it:
//   - ReceiptHandleIsInvalid: not a receipt handle at all;
//   - MessageNotInflight: a valid handle whose message is not in flight;
//   - InvalidParameterValue about the ReceiptHandle parameter: what
//     ChangeMessageVisibility answers for a handle whose message was
//     deleted or received again. The same code about another parameter
//     (such as a total visibility past 12 hours) is not a receipt problem;
//   - InvalidIdFormat: the older code for a malformed handle.
func badReceipt(err error) bool {
	var invalid *types.ReceiptHandleIsInvalid
	var notInflight *types.MessageNotInflight
	if errors.As(err, &invalid) || errors.As(err, &notInflight) {
		return true
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch strings.TrimPrefix(apiErr.ErrorCode(), queryCodePrefix) {
	case "ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidIdFormat":
		return true
	case "InvalidParameterValue":
		msg := strings.ToLower(apiErr.ErrorMessage())
		return strings.Contains(msg, "receipthandle") || strings.Contains(msg, "receipt handle")
	}
	return false
}
