package awse2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/standin"
)

// maxCallsPerMessage is what a message may cost in AWS requests through
// the gateway, parse and one webhook route: the gateway's raw PUT and
// ParseJob send, parse's raw GET, parsed.json PUT and WebhookJob send, and
// nothing for the webhook stage, which gets the parsed form inside its job.
const maxCallsPerMessage = 5

// TestCallsPerMessage counts the S3 and SQS requests Postern makes per
// message, through counting proxies in front of the stand-ins: the gateway
// in AWS mode and the real parse and webhook functions get the proxies'
// endpoints; the test's own set-up and the event source mapping's
// ReceiveMessage and DeleteMessageBatch (Lambda's requests, billed to
// Lambda's poller, not made by Postern code) go straight to the stand-ins.
// A first message warms everything (cold starts, connections) and is not
// counted; then perMessage is the mean over the next n messages.
func TestCallsPerMessage(t *testing.T) {
	standin.IsolateAWSEnv(t, standin.Region)
	t.Setenv(secretEnv, testSecret)
	fx := newFixture(t)

	c := newCounter()
	s3ep := c.proxy(t, fx.s3Endpoint, s3Op)
	sqsep := c.proxy(t, fx.sqsEndpoint, sqsOp)
	rcv := newReceiver(t, http.StatusOK, "")
	// The template's numbers (function timeouts, batch sizes, record
	// concurrency), as deployed.
	st := newStack(t, fx, stackOptions{
		routes:     hookRoute("app", "*@app.test", rcv.url),
		s3Endpoint: s3ep, s3: fx.s3,
		sqsEndpoint: sqsep, sqs: fx.sqs,
		template: true,
	})
	st.deploy(t, fx, "parse", "webhook")
	addr := st.smtpAddr()

	msg := func(i int) []byte {
		return fmt.Appendf(nil, "From: Scanner <scanner@lan.example>\r\nTo: invoices@app.test\r\nSubject: scan %d\r\n\r\nYour scan %d is ready.\r\n", i, i)
	}
	mustSend(t, addr, "invoices@app.test", msg(0))
	rcv.wait(t, 1, 30*time.Second)
	st.waitDrained(t, 15*time.Second)

	const n = 10
	before := c.snapshot()
	for i := 1; i <= n; i++ {
		mustSend(t, addr, "invoices@app.test", msg(i))
	}
	rcv.wait(t, 1+n, 60*time.Second)
	// A stage's last requests (after the POST) end before its batch is
	// deleted, so drained queues mean every request has been counted.
	st.waitDrained(t, 15*time.Second)
	counts, total := c.since(before)
	per := float64(total) / n
	t.Logf("calls_per_message=%.2f (%d requests for %d messages): %s", per, total, n, breakdown(counts, n))
	if per > maxCallsPerMessage {
		t.Errorf("calls_per_message=%.2f, want at most %d", per, maxCallsPerMessage)
	}
	if got := len(rcv.requests()); got != 1+n {
		t.Errorf("the receiver got %d requests, want %d", got, 1+n)
	}
}

// waitDrained waits until the inbound and webhook queues hold nothing,
// visible or in flight.
func (st *stack) waitDrained(t *testing.T, d time.Duration) {
	t.Helper()
	eventually(t, d, "inbound and webhook queues drained", func() bool {
		return st.depth(t, app.QueueInbound) == 0 && st.depth(t, app.QueueWebhook) == 0
	})
}
