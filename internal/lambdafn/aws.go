package lambdafn

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/postern/postern/internal/blob/s3blob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/queue"
	"github.com/postern/postern/internal/queue/sqsqueue"
)

// AWS is the aws backend: the S3 store and the four SQS queues. The
// gateway on AWS and every function open it the same way.
type AWS struct {
	Store *s3blob.Store
	// SQS holds the four queues by name (QueueInbound, ...).
	SQS map[string]*sqsqueue.Queue
	// Queue opens another queue with the same client (a dead-letter queue).
	Queue func(url string) *sqsqueue.Queue
}

// OpenAWS makes the S3 and SQS clients backend.aws describes. It sends
// nothing: a function's cold start stays cheap, and an unreachable
// service shows at the first job.
func OpenAWS(ctx context.Context, a config.AWS, log *slog.Logger) (*AWS, error) {
	store, err := NewS3Store(ctx, a)
	if err != nil {
		return nil, err
	}
	sqsc, err := sqsqueue.NewClient(ctx, sqsqueue.ClientConfig{Region: a.Region, Endpoint: a.SQSEndpoint})
	if err != nil {
		return nil, fmt.Errorf("backend.aws: SQS client: %w", err)
	}
	open := func(url string) *sqsqueue.Queue { return sqsqueue.New(sqsc, url, sqsqueue.Options{Logger: log}) }
	b := &AWS{Store: store, SQS: map[string]*sqsqueue.Queue{}, Queue: open}
	for name, url := range queueURLs(a.Queues) {
		b.SQS[name] = open(url)
	}
	return b, nil
}

// Queues is SQS as the stages' queue.Queue map.
func (b *AWS) Queues() map[string]queue.Queue {
	out := make(map[string]queue.Queue, len(b.SQS))
	for name, q := range b.SQS {
		out[name] = q
	}
	return out
}

// Deps is what a stage on this backend is built from.
func (b *AWS) Deps(cfg *config.Config, log *slog.Logger) *Deps {
	return &Deps{Config: cfg, Store: b.Store, Queues: b.Queues(), URLs: b.Store, Log: log}
}

// DeadLetter opens the dead-letter queue of the named queue
// (backend.aws.dead_letter, POSTERN_DLQ_* in the template), or returns nil
// when none is configured: the redrive policy then dead-letters a
// permanently failed record after its receives run out.
func (b *AWS) DeadLetter(a config.AWS, name string) *sqsqueue.Queue {
	if url := queueURLs(a.DeadLetter)[name]; url != "" {
		return b.Queue(url)
	}
	return nil
}

// NewS3Store is the aws backend's store.
func NewS3Store(ctx context.Context, a config.AWS) (*s3blob.Store, error) {
	c, err := s3blob.NewClient(ctx, a.S3Endpoint, a.Region, a.S3PathStyle, nil)
	if err != nil {
		return nil, fmt.Errorf("backend.aws: S3 client: %w", err)
	}
	return s3blob.New(c, a.Bucket, s3blob.Options{Prefix: a.Prefix, ServerSideEncryption: types.ServerSideEncryption(a.SSE), SSEKMSKeyID: a.KMSKeyID}), nil
}

func queueURLs(q config.Queues) map[string]string {
	return map[string]string{QueueInbound: q.Inbound, QueueWebhook: q.Webhook, QueueRelay: q.Relay, QueueDSN: q.DSN}
}
