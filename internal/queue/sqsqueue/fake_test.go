package sqsqueue

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// fakeAPI answers each call with its function field; a nil field fails the
// call, so a test sees any call it did not expect.
type fakeAPI struct {
	send    func(*sqs.SendMessageInput) (*sqs.SendMessageOutput, error)
	receive func(*sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error)
	del     func(*sqs.DeleteMessageInput) (*sqs.DeleteMessageOutput, error)
	change  func(*sqs.ChangeMessageVisibilityInput) (*sqs.ChangeMessageVisibilityOutput, error)
	attrs   func(*sqs.GetQueueAttributesInput) (*sqs.GetQueueAttributesOutput, error)
}

var _ API = (*fakeAPI)(nil)

var errUnexpected = errors.New("unexpected call")

func (f *fakeAPI) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	if f.send == nil {
		return nil, errUnexpected
	}
	return f.send(in)
}

func (f *fakeAPI) ReceiveMessage(_ context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	if f.receive == nil {
		return nil, errUnexpected
	}
	return f.receive(in)
}

func (f *fakeAPI) DeleteMessage(_ context.Context, in *sqs.DeleteMessageInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	if f.del == nil {
		return nil, errUnexpected
	}
	return f.del(in)
}

func (f *fakeAPI) ChangeMessageVisibility(_ context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	if f.change == nil {
		return nil, errUnexpected
	}
	return f.change(in)
}

func (f *fakeAPI) GetQueueAttributes(_ context.Context, in *sqs.GetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	if f.attrs == nil {
		return nil, errUnexpected
	}
	return f.attrs(in)
}
