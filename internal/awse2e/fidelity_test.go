package awse2e

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/relay/relaytest"
	"github.com/postern/postern/internal/standin"
)

// TestTemplateFidelity runs all four function binaries under the Runtime
// API harness as template.yaml deploys them: each queue with the
// template's visibility timeout and receive count, each event source
// mapping with its batch size, batching window and (up to maxInstances)
// concurrency, each function with its timeout and the template's
// POSTERN_DLQ_* and POSTERN_RECORD_CONCURRENCY. Mail goes through every
// stage (a webhook, a relay to an SMTP sink on a port other than 25, and
// a DSN for a webhook that refuses for good, sent through a second sink),
// and a job that fails permanently in any stage is in that stage's
// dead-letter queue within seconds: the function put it there itself,
// since the redrive policy would take visibility x maxReceiveCount (hours).
func TestTemplateFidelity(t *testing.T) {
	standin.IsolateAWSEnv(t, standin.Region)
	t.Setenv(secretEnv, testSecret)
	fx := newFixture(t)

	w := newWorld(t, fx)
	st, ok, gone, relaySink, dsnSink := w.st, w.ok, w.gone, w.relaySink, w.dsnSink
	for stage := range stageQueues {
		env := st.stageEnv[stage]
		dlq := "POSTERN_DLQ_" + strings.ToUpper(stageQueues[stage])
		if env[dlq] != st.queues[stageQueues[stage]+"-dlq"].url {
			t.Fatalf("%s function: %s = %q, want the stack's %s-dlq (from the template)", stage, dlq, env[dlq], stageQueues[stage])
		}
		// The configuration is read from the bucket at cold start, as on
		// AWS: nothing inline.
		if !strings.HasPrefix(env["POSTERN_CONFIG_URI"], "s3://"+st.bucket+"/") || env["POSTERN_CONFIG_YAML"] != "" {
			t.Fatalf("%s function: POSTERN_CONFIG_URI %q, POSTERN_CONFIG_YAML %d bytes; want the configuration object only", stage, env["POSTERN_CONFIG_URI"], len(env["POSTERN_CONFIG_YAML"]))
		}
	}
	st.deploy(t, fx, "parse", "webhook", "relay", "dsn")

	msg, _ := scan(t)
	hookID := mustSend(t, st.smtpAddr(), "invoices@app.test", msg)
	relayID := mustSend(t, st.smtpAddr(), "archive@relay.test", msg)
	goneID := mustSend(t, st.smtpAddr(), "old@gone.test", msg)

	if reqs := ok.wait(t, 1, 60*time.Second); reqs[0].header.Get("webhook-id") != hookID+".app" {
		t.Errorf("webhook-id %q, want %s.app", reqs[0].header.Get("webhook-id"), hookID)
	}
	relayed := waitTx(t, relaySink, 1, 60*time.Second)[0]
	if relayed.From != "scanner@lan.example" || !slices.Equal(relayed.Rcpts, []string{"archive@relay.test"}) || !bytes.Contains(relayed.Data, []byte(relayID)) {
		t.Errorf("relayed MAIL FROM %q RCPT %v, %d bytes; want the message %s from scanner@lan.example to archive@relay.test", relayed.From, relayed.Rcpts, len(relayed.Data), relayID)
	}
	gone.wait(t, 1, 60*time.Second)
	notice := waitTx(t, dsnSink, 1, 60*time.Second)[0]
	if notice.From != "" || !slices.Equal(notice.Rcpts, []string{"scanner@lan.example"}) {
		t.Errorf("notice MAIL FROM %q RCPT %v, want <> to the sender scanner@lan.example", notice.From, notice.Rcpts)
	}
	for _, want := range []string{"multipart/report", "Final-Recipient: rfc822; old@gone.test", "Action: failed", goneID} {
		if !bytes.Contains(notice.Data, []byte(want)) {
			t.Errorf("the notice lacks %q", want)
		}
	}

	// A job no stage can ever handle, on each stage's queue.
	ctx := t.Context()
	sent := map[string]string{}
	for stage, q := range stageQueues {
		out, err := st.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(st.queues[q].url), MessageBody: aws.String(`{"v":1,"id":"` + stage)})
		if err != nil {
			t.Fatal(err)
		}
		sent[stage] = aws.ToString(out.MessageId)
	}
	for stage, q := range stageQueues {
		spec := st.specs[stage]
		m := waitForMessage(t, st, q+"-dlq", 30*time.Second)
		if got := string(body(t, m)); got != `{"v":1,"id":"`+stage {
			t.Errorf("%s-dlq holds %q, want the %s job", q, got, stage)
		}
		if n := m.Attributes["ApproximateReceiveCount"]; n != "1" {
			t.Errorf("%s-dlq: the dead-lettered job has ApproximateReceiveCount %s, want 1 (a new message the function sent; the redrive policy would need %d receives of %s)", q, n, spec.maxReceives, spec.visibility)
		}
		if _, err := st.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(st.queues[q+"-dlq"].url), ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range stageQueues {
		eventually(t, 10*time.Second, q+" empty", func() bool { return st.depth(t, q) == 0 })
	}
	st.wantEmpty(t, app.QueueInbound+"-dlq", app.QueueWebhook+"-dlq", app.QueueRelay+"-dlq", app.QueueDSN+"-dlq")
	if n := len(ok.requests()) + len(gone.requests()); n != 2 {
		t.Errorf("the webhook receivers got %d requests, want 2 (no retries)", n)
	}
}

// waitTx returns the sink's transactions once there are at least n.
func waitTx(t *testing.T, s *relaytest.Server, n int, d time.Duration) []relaytest.Tx {
	t.Helper()
	var txs []relaytest.Tx
	eventually(t, d, fmt.Sprintf("%d transactions at %s", n, s.Addr), func() bool {
		txs = s.Txs()
		return len(txs) >= n
	})
	return txs
}

// world is a stack as the template makes it with a route for every stage:
// *@app.test to a webhook answering 200, *@gone.test to one answering 410
// (a DSN), *@relay.test to relaySink; DSNs go out through dsnSink, to
// senders *@lan.example.
type world struct {
	st                 *stack
	ok, gone           *receiver
	relaySink, dsnSink *relaytest.Server
}

func newWorld(t testing.TB, fx *fixture) *world {
	t.Helper()
	ok := newReceiver(t, http.StatusOK, "")
	gone := newReceiver(t, http.StatusGone, "") // permanent: a DSN, no retry
	relaySink := relaytest.NewServer(t, relaytest.Options{})
	dsnSink := relaytest.NewServer(t, relaytest.Options{})
	routes := hookRoute("app", "*@app.test", ok.url) + hookRoute("gone", "*@gone.test", gone.url) + fmt.Sprintf(`  - name: out
    match: {recipients: ["*@relay.test"]}
    relay: {type: smtp, addr: %q, tls: none}
`, relaySink.Addr)
	extra := fmt.Sprintf(`identities:
  - name: lan
    networks: ["127.0.0.0/8"]
    allowed_senders: ["*@lan.example"]
    allow_plaintext: true
dsn:
  relay: {type: smtp, addr: %q, tls: none}
`, dsnSink.Addr)
	return &world{st: newStack(t, fx, stackOptions{routes: routes, config: extra, template: true}),
		ok: ok, gone: gone, relaySink: relaySink, dsnSink: dsnSink}
}
