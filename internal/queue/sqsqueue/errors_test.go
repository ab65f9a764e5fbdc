package sqsqueue

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/postern/postern/internal/queue"
)

func TestBadReceipt(t *testing.T) {
	t.Parallel()
	op := func(err error) error {
		return &smithy.OperationError{ServiceID: "SQS", OperationName: "DeleteMessage", Err: err}
	}
	query := func(code string) *string { return aws.String(code) }
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"typed ReceiptHandleIsInvalid", op(&types.ReceiptHandleIsInvalid{}), true},
		{"typed MessageNotInflight", op(&types.MessageNotInflight{}), true},
		{"MessageNotInflight, query code", op(&types.MessageNotInflight{ErrorCodeOverride: query("AWS.SimpleQueueService.MessageNotInflight")}), true},
		{"generic ReceiptHandleIsInvalid", op(&smithy.GenericAPIError{Code: "ReceiptHandleIsInvalid"}), true},
		{"generic, query prefix", op(&smithy.GenericAPIError{Code: "AWS.SimpleQueueService.MessageNotInflight"}), true},
		{"InvalidIdFormat", op(&smithy.GenericAPIError{Code: "InvalidIdFormat"}), true},
		{"InvalidParameterValue, receipt", op(&smithy.GenericAPIError{Code: "InvalidParameterValue",
			Message: "Value AQEB for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change."}), true},
		{"InvalidParameterValue, visibility", op(&smithy.GenericAPIError{Code: "InvalidParameterValue",
			Message: "Value 43200 for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the message is beyond the limit [43200 seconds]"}), false},
		{"QueueDoesNotExist", op(&types.QueueDoesNotExist{}), false},
		{"throttled", op(&smithy.GenericAPIError{Code: "RequestThrottled"}), false},
		{"transport", op(errors.New("connection refused")), false},
		{"nil", nil, false},
	}
	for _, c := range cases {
		if got := badReceipt(c.err); got != c.want {
			t.Errorf("%s: badReceipt = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestReceiptErrorsWrap: Delete and ChangeVisibility report a bad receipt
// as queue.ErrInvalidReceipt and keep the SDK's error in the chain; other
// errors are not ErrInvalidReceipt.
func TestReceiptErrorsWrap(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err     error
		invalid bool
	}{
		{&types.ReceiptHandleIsInvalid{Message: aws.String("bad")}, true},
		{&types.QueueDoesNotExist{}, false},
	} {
		q := New(&fakeAPI{
			del: func(*sqs.DeleteMessageInput) (*sqs.DeleteMessageOutput, error) { return nil, c.err },
			change: func(*sqs.ChangeMessageVisibilityInput) (*sqs.ChangeMessageVisibilityOutput, error) {
				return nil, c.err
			},
		}, testURL, Options{})
		for name, err := range map[string]error{
			"Delete":           q.Delete(t.Context(), "r"),
			"ChangeVisibility": q.ChangeVisibility(t.Context(), "r", 0),
		} {
			if errors.Is(err, queue.ErrInvalidReceipt) != c.invalid || !errors.Is(err, c.err) {
				t.Errorf("%s with %T = %v; want ErrInvalidReceipt %v and the SDK error kept", name, c.err, err, c.invalid)
			}
		}
	}
	q := New(&fakeAPI{}, testURL, Options{})
	if err := q.Delete(t.Context(), ""); !errors.Is(err, queue.ErrInvalidReceipt) || errors.Is(err, errUnexpected) {
		t.Errorf("Delete(\"\") = %v, want ErrInvalidReceipt without a call", err)
	}
	if err := q.ChangeVisibility(t.Context(), "", 0); !errors.Is(err, queue.ErrInvalidReceipt) || errors.Is(err, errUnexpected) {
		t.Errorf("ChangeVisibility(\"\") = %v, want ErrInvalidReceipt without a call", err)
	}
}
