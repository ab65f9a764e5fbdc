package lambdasqs

import (
	"context"
	"crypto/rand"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue/sqsqueue"
	"github.com/postern/postern/internal/standin"
)

// The SQS stand-in is fauxqs (see package standin), shared by the tests and
// stopped here.
func TestMain(m *testing.M) { standin.Main(m) }

// Records not started are on the queue again at once, not after its
// visibility timeout (15 minutes here): through a real SQS API, received
// as the event source would, handed to Handle with too little time left.
func TestNotStartedRecordsAreVisibleAgainAtOnce(t *testing.T) {
	t.Parallel()
	ep := standin.SQS(t)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	// The HTTP client is set on the service: config.WithHTTPClient breaks
	// under AWS_CA_BUNDLE.
	client := sqs.New(sqs.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(ep),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:  awsclient.HTTPClient(&http.Client{Transport: tr, Timeout: 30 * time.Second}),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "lambdasqs-notstarted-" + rand.Text()[:8]
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name),
		Attributes: map[string]string{"VisibilityTimeout": "900"}})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(out.QueueUrl)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
			t.Errorf("DeleteQueue: %v", err)
		}
	})
	q := sqsqueue.New(client, url, sqsqueue.Options{})
	for _, body := range []string{"a", "b", "c"} {
		if _, err := q.Send(ctx, []byte(body), 0); err != nil {
			t.Fatal(err)
		}
	}
	var ev events.SQSEvent
	for len(ev.Records) < 3 {
		msgs, err := q.Receive(ctx, 10, 900*time.Second, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			ev.Records = append(ev.Records, events.SQSMessage{MessageId: m.ID, ReceiptHandle: m.Receipt, Body: string(m.Body),
				Attributes: map[string]string{"ApproximateReceiveCount": "1"}})
		}
	}

	h := postern.HandlerFunc(func(context.Context, postern.Job) error {
		t.Error("a record started with a budget larger than the time left")
		return nil
	})
	a := &Adapter{Stage: "webhook", Handler: h, Log: testLog(t), Visibility: q, Margin: 100 * time.Millisecond,
		Budget: func([]byte) time.Duration { return time.Minute }}
	inv, cancelInv := context.WithTimeout(ctx, 3*time.Second)
	defer cancelInv()
	resp, err := a.Handle(inv, ev)
	if err != nil || len(resp.BatchItemFailures) != 3 {
		t.Fatalf("failures %v, err %v; want all 3 reported", resp.BatchItemFailures, err)
	}

	var again []string
	for range 5 {
		msgs, err := q.Receive(ctx, 10, 900*time.Second, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			again = append(again, string(m.Body))
		}
		if len(again) >= 3 {
			break
		}
	}
	slices.Sort(again)
	if !equal(again, []string{"a", "b", "c"}) {
		t.Errorf("received again %v, want [a b c] at once (not after the 900 s visibility timeout)", again)
	}
}
