package awse2e

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue/sqsqueue"
)

// testPartialBatch: the parse function gets one batch of three records: a
// job as the gateway queued it, a job sent base64-encoded with the
// body-encoding attribute (as the queue adapter sends bodies SQS cannot
// carry as text), and a malformed one. Only the malformed one is reported
// failed; the event source mapping deletes the others, so only it comes
// back, and after the inbound queue's maxReceiveCount it is dead-lettered.
func testPartialBatch(t *testing.T, fx *fixture) {
	ctx := t.Context()
	rcv := newReceiver(t, http.StatusOK, "")
	st := newStack(t, fx, stackOptions{routes: hookRoute("app", "*@app.test", rcv.url)})
	m := st.mapping("parse", st.function(t, fx, "parse"))
	inbound := aws.String(st.queues[app.QueueInbound].url)

	msg, _ := scan(t)
	plainID := mustSend(t, st.smtpAddr(), "invoices@app.test", msg)
	encodedID := mustSend(t, st.smtpAddr(), "invoices@app.test", msg)
	var batch []types.Message
	for _, job := range collect(t, st, app.QueueInbound, 2) {
		var pj postern.ParseJob
		if err := json.Unmarshal(body(t, job), &pj); err != nil {
			t.Fatal(err)
		}
		if string(pj.ID) == plainID {
			batch = append(batch, job) // handed on as received
			continue
		}
		if _, err := st.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: inbound, ReceiptHandle: job.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.sqs.SendMessage(ctx, &sqs.SendMessageInput{
			QueueUrl:    inbound,
			MessageBody: aws.String(base64.StdEncoding.EncodeToString(body(t, job))),
			MessageAttributes: map[string]types.MessageAttributeValue{sqsqueue.BodyEncodingAttribute: {
				DataType: aws.String("String"), StringValue: aws.String(sqsqueue.EncodingBase64)}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	bad, err := st.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: inbound, MessageBody: aws.String(`{"v":1,"id":`)})
	if err != nil {
		t.Fatal(err)
	}
	badID := aws.ToString(bad.MessageId)
	batch = append(batch, collect(t, st, app.QueueInbound, 2)...)

	failed, err := m.deliver(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(failed, []string{badID}) {
		t.Fatalf("BatchItemFailures %v, want only the malformed record %s", failed, badID)
	}
	// Both good records were handled: their webhook jobs are queued.
	var routed []string
	for _, w := range collect(t, st, app.QueueWebhook, 2) {
		var job postern.WebhookJob
		if err := json.Unmarshal(body(t, w), &job); err != nil {
			t.Fatal(err)
		}
		routed = append(routed, string(job.ID))
	}
	slices.Sort(routed)
	if want := sorted(plainID, encodedID); !slices.Equal(routed, want) {
		t.Errorf("webhook jobs for %v, want %v", routed, want)
	}

	// Only the failed record comes back (visibility timeout 2 s) ...
	again := collect(t, st, app.QueueInbound, 1)
	if got := aws.ToString(again[0].MessageId); got != badID {
		t.Fatalf("record %s came back, want only the failed %s", got, badID)
	}
	if n := again[0].Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]; n != "2" {
		t.Errorf("ApproximateReceiveCount %q, want 2", n)
	}
	if failed, err := m.deliver(ctx, again); err != nil || !slices.Equal(failed, []string{badID}) {
		t.Fatalf("second delivery: failures %v, %v; want %s again", failed, err, badID)
	}
	// ... and after maxReceiveCount (2) receives, the next receive moves it
	// to the dead-letter queue.
	time.Sleep(2 * time.Second)
	if msgs, err := st.receive(ctx, app.QueueInbound, 10, time.Second); err != nil || len(msgs) != 0 {
		t.Fatalf("inbound receive after the last allowed attempt: %d messages, %v; want none", len(msgs), err)
	}
	if got := aws.ToString(waitForMessage(t, st, app.QueueInbound+"-dlq", 5*time.Second).MessageId); got != badID {
		t.Errorf("dead-lettered %s, want %s", got, badID)
	}
}
