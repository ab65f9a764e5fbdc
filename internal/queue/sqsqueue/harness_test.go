package sqsqueue_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/queue/sqsqueue"
)

// newClient is an SQS client for the stand-in: static credentials, the
// stand-in as endpoint, and an HTTP client of its own set on the service
// (not through config.WithHTTPClient, which AWS_CA_BUNDLE breaks).
func newClient(t *testing.T) *sqs.Client {
	t.Helper()
	ep := endpoint(t)
	tr := &http.Transport{MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(ep),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:   awsclient.HTTPClient(&http.Client{Transport: tr}),
	})
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// createQueue makes a queue with a name unique to t (and suffix), deleted
// when t ends, and returns its URL.
func createQueue(t *testing.T, client *sqs.Client, suffix string, attrs map[string]string) string {
	t.Helper()
	base := unsafeName.ReplaceAllString(t.Name(), "-")
	if len(base) > 50 {
		base = base[len(base)-50:]
	}
	name := fmt.Sprintf("%s-%s%s", base, rand.Text()[:8], suffix)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("CreateQueue(%s): %v", name, err)
	}
	url := aws.ToString(out.QueueUrl)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
			t.Errorf("DeleteQueue(%s): %v", name, err)
		}
	})
	return url
}

// createQueueWithDLQ makes a queue whose messages move to a dead-letter
// queue after maxReceives receives (SQS's RedrivePolicy), and returns both
// URLs.
func createQueueWithDLQ(t *testing.T, client *sqs.Client, maxReceives int) (url, dlqURL string) {
	t.Helper()
	dlqURL = createQueue(t, client, "-dlq", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(dlqURL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes(QueueArn): %v", err)
	}
	arn := out.Attributes[string(types.QueueAttributeNameQueueArn)]
	if arn == "" {
		t.Fatalf("dead-letter queue %s has no QueueArn", dlqURL)
	}
	policy, err := json.Marshal(map[string]any{"deadLetterTargetArn": arn, "maxReceiveCount": maxReceives})
	if err != nil {
		t.Fatal(err)
	}
	url = createQueue(t, client, "", map[string]string{string(types.QueueAttributeNameRedrivePolicy): string(policy)})
	return url, dlqURL
}

// testLogger sends a queue's log to t's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// receiptCheck stands in for a check that SQS makes and fauxqs does not:
// SQS refuses DeleteMessage with a string it never issued as a receipt
// handle (ReceiptHandleIsInvalid), while fauxqs 2.4.1 accepts any handle
// silently (see TestStandinDeleteAcceptsAnyReceipt). It answers, as SQS
// does, for handles that no ReceiveMessage through it returned, and passes
// every other call, including Deletes with stale handles (which SQS accepts
// too), to the real server.
type receiptCheck struct {
	sqsqueue.API
	mu     sync.Mutex
	issued map[string]bool
}

func (c *receiptCheck) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	out, err := c.API.ReceiveMessage(ctx, in, optFns...)
	if err == nil {
		c.mu.Lock()
		if c.issued == nil {
			c.issued = map[string]bool{}
		}
		for _, m := range out.Messages {
			c.issued[aws.ToString(m.ReceiptHandle)] = true
		}
		c.mu.Unlock()
	}
	return out, err
}

func (c *receiptCheck) DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	h := aws.ToString(in.ReceiptHandle)
	c.mu.Lock()
	ok := c.issued[h]
	c.mu.Unlock()
	if !ok {
		return nil, &smithy.OperationError{ServiceID: "SQS", OperationName: "DeleteMessage", Err: &types.ReceiptHandleIsInvalid{
			Message: aws.String(fmt.Sprintf("The input receipt handle %q is not a valid receipt handle.", h)),
		}}
	}
	return c.API.DeleteMessage(ctx, in, optFns...)
}
