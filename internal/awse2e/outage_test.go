package awse2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/standin"
)

// noFunctions is the webhook URL of stacks that run no functions: nothing
// is ever delivered to it.
const noFunctions = "http://127.0.0.1:9/never"

// testSQSOutage: with its SQS endpoint down the gateway answers 451 4.3.0
// (a stored message without a queued job is not accepted) and is not
// ready; once SQS is back it accepts again without a restart. Its own
// fauxqs, so no other test sees the outage.
func testSQSOutage(t *testing.T, fx *fixture) {
	own := standin.StartSQS(t)
	st := newStack(t, fx, stackOptions{routes: hookRoute("app", "*@app.test", noFunctions),
		sqsEndpoint: own.Endpoint, sqs: newSQSClient(t, own.Endpoint)})
	addr := st.smtpAddr()
	mustSend(t, addr, "invoices@app.test", []byte("Subject: before\r\n\r\nwarm connections\r\n"))

	if err := own.Stop(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_, err := send(t, addr, "scanner@lan.example", "invoices@app.test", []byte("Subject: during\r\n\r\nrefused\r\n"))
	want451(t, err)
	t.Logf("451 after %s with SQS down", time.Since(began).Round(time.Millisecond))
	if code := readyz(t, st); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with SQS down = %d, want 503", code)
	}

	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	st.createQueues(t) // fauxqs comes back empty; the same names give the same URLs
	eventually(t, 15*time.Second, "/readyz 200 after SQS returned", func() bool { return readyz(t, st) == http.StatusOK })
	id := mustSend(t, addr, "invoices@app.test", []byte("Subject: after\r\n\r\naccepted\r\n"))
	jobs := collect(t, st, app.QueueInbound, 1)
	var pj postern.ParseJob
	if err := json.Unmarshal(body(t, jobs[0]), &pj); err != nil || string(pj.ID) != id {
		t.Errorf("queued job %+v (%v), want the parse job for %s", pj, err, id)
	}
}

// testS3Outage: with its S3 endpoint down the gateway still accepts a
// small message (it travels in its ParseJob: SQS alone makes it durable)
// but answers a large one 451 4.3.0 and queues nothing for it; once S3 is
// back it accepts large ones again. Its own versitygw, which keeps the
// bucket across the restart.
func testS3Outage(t *testing.T, fx *fixture) {
	own := standin.StartS3(t, standin.S3Options{})
	st := newStack(t, fx, stackOptions{routes: hookRoute("app", "*@app.test", noFunctions),
		s3Endpoint: own.Endpoint, s3: newS3Client(t, own.Endpoint, standin.S3AccessKey, standin.S3SecretKey)})
	addr := st.smtpAddr()
	large := append([]byte("Subject: large\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef\r\n"), postern.MaxInlineRaw/18+1)...)
	first := mustSend(t, addr, "invoices@app.test", large)

	if err := own.Stop(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_, err := send(t, addr, "scanner@lan.example", "invoices@app.test", large)
	want451(t, err)
	t.Logf("451 after %s with S3 down", time.Since(began).Round(time.Millisecond))
	small := []byte("Subject: during\r\n\r\nin the job\r\n")
	during := mustSend(t, addr, "invoices@app.test", small)
	if code := readyz(t, st); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with S3 down = %d, want 503", code)
	}

	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "/readyz 200 after S3 returned", func() bool { return readyz(t, st) == http.StatusOK })
	second := mustSend(t, addr, "invoices@app.test", large)

	// Exactly the three accepted messages were queued: the refused one left
	// no job behind, and the small one carries its bytes.
	var ids []string
	for _, m := range collect(t, st, app.QueueInbound, 3) {
		var pj postern.ParseJob
		if err := json.Unmarshal(body(t, m), &pj); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, string(pj.ID))
		// The gateway's trace fields come first: the message ends the job.
		if string(pj.ID) == during && (!bytes.HasSuffix(pj.Raw, small) || int64(len(pj.Raw)) != pj.Envelope.Size) {
			t.Errorf("the job of the message accepted during the outage carries %q, want the message", pj.Raw)
		}
	}
	slices.Sort(ids)
	if want := sorted(first, during, second); !slices.Equal(ids, want) {
		t.Errorf("queued jobs for %v, want %v", ids, want)
	}
	if n := st.depth(t, app.QueueInbound); n != 3 {
		t.Errorf("inbound holds %d messages, want the 3 accepted", n)
	}
}
