package awse2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jhillyerd/enmime/v2"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/standin"
	"github.com/postern/postern/internal/webhook"
)

// The webhook signing secret of most tests, an env: secret in the
// functions' environment (the stack passes it; the template itself names
// Secrets Manager secrets, read at run time: see
// TestWebhookSecretFromSecretsManager). Never in the configuration.
const (
	testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretEnv  = "POSTERN_WEBHOOK_SECRET"
)

// TestAWSMode runs every AWS-mode scenario against one set of stand-ins and
// one build of the functions. Its subtests run in parallel, each with a
// deployment of its own; the environment set here (t.Setenv, which keeps
// this test itself serial) is the gateway's credential chain in all of
// them.
func TestAWSMode(t *testing.T) {
	standin.IsolateAWSEnv(t, standin.Region)
	// The functions get it from the stack; set here too for any code that
	// builds the webhook stage in this process.
	t.Setenv(secretEnv, testSecret)
	fx := newFixture(t)
	t.Run("WebhookGetsOneSignedPost", func(t *testing.T) { t.Parallel(); testWebhookDelivered(t, fx) })
	t.Run("FailingWebhookEndsInDeadLetterQueue", func(t *testing.T) { t.Parallel(); testFailingWebhook(t, fx) })
	t.Run("PartialBatchRetriesOnlyFailedRecords", func(t *testing.T) { t.Parallel(); testPartialBatch(t, fx) })
	t.Run("SQSOutageAnswers451AndRecovers", func(t *testing.T) { t.Parallel(); testSQSOutage(t, fx) })
	t.Run("S3OutageAnswers451AndRecovers", func(t *testing.T) { t.Parallel(); testS3Outage(t, fx) })
}

// hookRoute is a routes: entry sending recipients matching pattern to url.
// allow_private: the receivers listen on 127.0.0.1.
func hookRoute(name, pattern, url string) string {
	return fmt.Sprintf(`  - name: %s
    match: {recipients: [%q]}
    webhook: {url: %q, secrets: ["env:%s"], allow_private: true, timeout: 5s}
`, name, pattern, url, secretEnv)
}

// scan is a message as a scanner sends it: text, and a PDF too big to
// travel inline in the webhook payload (inline_attachment_bytes is 1024).
func scan(t testing.TB) (msg, pdf []byte) {
	t.Helper()
	pdf = append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte{0xff, 0x00, 0x7f}, 3000)...)
	part, err := enmime.Builder().
		From("Scanner 3F", "scanner@lan.example").
		To("Billing", "invoices@app.test").
		Subject("Scan ✓ 2026-11-22").
		Text([]byte("Your scan is attached.\n")).
		AddAttachment(pdf, "application/pdf", "scan.pdf").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := part.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), pdf
}

// testWebhookDelivered: SMTP in, S3 and SQS in between, both functions run
// as Lambda runs them, and the application gets exactly one signed POST
// about the message the 250 named.
func testWebhookDelivered(t *testing.T, fx *fixture) {
	rcv := newReceiver(t, http.StatusOK, "")
	st := newStack(t, fx, stackOptions{routes: hookRoute("app", "*@app.test", rcv.url)})
	st.deploy(t, fx, "parse", "webhook")

	msg, pdf := scan(t)
	id := mustSend(t, st.smtpAddr(), "invoices@app.test", msg)
	rcv.wait(t, 1, 30*time.Second)
	time.Sleep(1500 * time.Millisecond) // a duplicate would arrive by now
	reqs := rcv.requests()
	if len(reqs) != 1 {
		t.Fatalf("the receiver got %d requests, want exactly 1", len(reqs))
	}
	r := reqs[0]
	key, err := webhook.ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := webhook.Verify([][]byte{key}, r.header, r.body, 5*time.Minute, time.Now()); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	if got := r.header.Get("webhook-id"); got != id+".app" {
		t.Errorf("webhook-id %q, want %q (the id of the 250 reply)", got, id+".app")
	}
	var ev webhook.ReceivedEvent
	if err := json.Unmarshal(r.body, &ev); err != nil {
		t.Fatalf("payload: %v", err)
	}
	d := ev.Data
	if ev.Type != "email.received" || string(d.ID) != id || d.Route != "app" || d.Subject != "Scan ✓ 2026-11-22" {
		t.Errorf("event type=%q id=%q route=%q subject=%q", ev.Type, d.ID, d.Route, d.Subject)
	}
	if d.Envelope.Sender != "scanner@lan.example" || !slices.Equal(d.Envelope.Recipients, []string{"invoices@app.test"}) {
		t.Errorf("envelope %+v", d.Envelope)
	}
	// The attachment is stored by the parse function and linked with a
	// pre-signed URL that works without credentials.
	if len(d.Attachments) != 1 {
		t.Fatalf("attachments %+v, want the PDF", d.Attachments)
	}
	att := d.Attachments[0]
	sum := sha256.Sum256(pdf)
	if att.Filename != "scan.pdf" || att.Size != int64(len(pdf)) || att.SHA256 != hex.EncodeToString(sum[:]) || len(att.Content) != 0 || att.Key == "" {
		t.Errorf("attachment %s %d %s key=%q inline=%d bytes, want scan.pdf by reference", att.Filename, att.Size, att.SHA256, att.Key, len(att.Content))
	}
	if got := fetch(t, att.URL); !bytes.Equal(got, pdf) {
		t.Errorf("the attachment URL gave %d bytes, want the %d of the PDF", len(got), len(pdf))
	}
	if raw := fetch(t, d.Raw.URL); !bytes.Contains(raw, []byte("id "+id)) || !bytes.Contains(raw, []byte("Subject:")) {
		t.Errorf("the raw URL gave %d bytes without the Received header naming %s", len(raw), id)
	}
	st.wantEmpty(t, app.QueueInbound, app.QueueInbound+"-dlq", app.QueueWebhook, app.QueueWebhook+"-dlq")
	if code := readyz(t, st); code != http.StatusOK {
		t.Errorf("/readyz = %d, want 200", code)
	}
}

// fetch GETs a URL with no credentials and returns the body of a 200.
func fetch(t *testing.T, url string) []byte {
	t.Helper()
	if url == "" {
		t.Error("no URL in the payload")
		return nil
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET pre-signed URL: %s, %v", resp.Status, err)
	}
	return body
}

// testFailingWebhook: a receiver that always answers 503 gets the message
// once per receive the webhook queue allows (maxReceiveCount 3), and then
// the job waits in the dead-letter queue: nothing is lost.
func testFailingWebhook(t *testing.T, fx *fixture) {
	rcv := newReceiver(t, http.StatusServiceUnavailable, "1") // retry in 1 s, not the backoff's seconds
	st := newStack(t, fx, stackOptions{routes: hookRoute("down", "*@app.test", rcv.url)})
	st.deploy(t, fx, "parse", "webhook")

	msg, _ := scan(t)
	id := mustSend(t, st.smtpAddr(), "invoices@app.test", msg)

	dlq := waitForMessage(t, st, app.QueueWebhook+"-dlq", 45*time.Second)
	var job postern.WebhookJob
	if err := json.Unmarshal(body(t, dlq), &job); err != nil {
		t.Fatalf("dead-lettered job: %v", err)
	}
	if string(job.ID) != id || job.Route != "down" {
		t.Errorf("dead-lettered job for %s route %s, want %s route down", job.ID, job.Route, id)
	}
	reqs := rcv.requests()
	if len(reqs) != queueSpec[app.QueueWebhook].maxReceives {
		t.Errorf("the receiver got %d attempts, want %d (the webhook queue's maxReceiveCount)", len(reqs), queueSpec[app.QueueWebhook].maxReceives)
	}
	for i, r := range reqs {
		if got := r.header.Get("webhook-id"); got != id+".down" {
			t.Errorf("attempt %d webhook-id %q, want %q on every attempt", i+1, got, id+".down")
		}
	}
	st.wantEmpty(t, app.QueueInbound, app.QueueInbound+"-dlq", app.QueueWebhook)
	// The message itself is still stored, for a redrive.
	if _, err := st.s3.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(st.bucket), Key: aws.String(postern.MsgID(id).RawKey())}); err != nil {
		t.Errorf("raw message of the dead-lettered job: %v", err)
	}
}
