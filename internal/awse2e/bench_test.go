package awse2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/standin"
)

// BenchmarkStageThroughput measures messages per second through each
// stage's function binary under the Runtime API harness, fed from its
// stand-in queue with the template's numbers: the batch size, batching
// window and record concurrency (POSTERN_RECORD_CONCURRENCY) of its
// function, and min(MaximumConcurrency, POSTERN_BENCH_INSTANCES, default
// 2) instances, each polled by its own event source mapping. b.N copies of
// one real job (made by the gateway and the stages before it) are queued
// first, untimed; the time is from starting the instances (cold starts
// included) to the queue being empty. The dependencies are the stand-ins
// on this machine: versitygw for S3, fauxqs for SQS, loopback HTTP and
// SMTP sinks answering at once, so the figures show the functions' and
// stand-ins' own cost on this machine's CPUs, not AWS's latencies or
// scale. The webhook stage posts to a receiver answering 200, relay and
// dsn send to an SMTP sink, and parse reads a 10 KB scan with a 9 KB PDF
// and routes it to one webhook. Run with
//
//	POSTERN_REQUIRE_STANDINS=1 go test ./internal/awse2e -run '^$' -bench StageThroughput -benchtime 200x
func BenchmarkStageThroughput(b *testing.B) {
	standin.IsolateAWSEnv(b, standin.Region)
	b.Setenv(secretEnv, testSecret)
	fx := newFixture(b)
	w := newWorld(b, fx)
	st := w.st
	jobs := stageJobs(b, fx, st)
	instances := 2
	if v := os.Getenv("POSTERN_BENCH_INSTANCES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("POSTERN_BENCH_INSTANCES=%q: want a positive number", v)
		}
		instances = n
	}
	// Downstream of parse is the webhook queue: parse runs last so its
	// output does not feed the webhook stage's run.
	for _, stage := range []string{"webhook", "relay", "dsn", "parse"} {
		b.Run(stage, func(b *testing.B) {
			spec := st.specs[stage]
			q := stageQueues[stage]
			sendCopies(b, st, q, jobs[stage], b.N)
			n := min(spec.maxConcurrency, instances)
			b.ResetTimer()
			start := time.Now()
			for range n {
				m := st.mapping(stage, st.function(b, fx, stage))
				m.graceful = true
				m.start(b)
			}
			for st.depth(b, q) > 0 {
				time.Sleep(20 * time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			if d := st.depth(b, q+"-dlq"); d != 0 {
				b.Fatalf("%d jobs dead-lettered", d)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(n), "instances")
			b.ReportMetric(float64(spec.batchSize), "batch")
			if c, err := strconv.Atoi(st.stageEnv[stage]["POSTERN_RECORD_CONCURRENCY"]); err == nil {
				b.ReportMetric(float64(c), "record_concurrency")
			}
		})
	}
}

// stageJobs makes one real job for each stage: the gateway takes a message
// for each of app.test, relay.test and gone.test, the parse function
// routes them, and the webhook function turns the gone.test one (410)
// into a DSN job.
func stageJobs(b *testing.B, fx *fixture, st *stack) map[string]string {
	b.Helper()
	msg, _ := scan(b)
	for _, to := range []string{"a@app.test", "a@relay.test", "a@gone.test"} {
		mustSend(b, st.smtpAddr(), to, msg)
	}
	jobs := map[string]string{}
	inbound := take(b, st, stageQueues["parse"], 3)
	jobs["parse"] = aws.ToString(inbound[0].Body)
	if _, err := st.mapping("parse", st.function(b, fx, "parse")).deliver(b.Context(), inbound); err != nil {
		b.Fatal(err)
	}
	jobs["relay"] = takeBody(b, st, stageQueues["relay"])
	hooks := take(b, st, stageQueues["webhook"], 2)
	for _, m := range hooks {
		var j postern.WebhookJob
		if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &j); err != nil {
			b.Fatal(err)
		}
		if j.Route == "app" {
			jobs["webhook"] = aws.ToString(m.Body)
		}
	}
	if _, err := st.mapping("webhook", st.function(b, fx, "webhook")).deliver(b.Context(), hooks); err != nil {
		b.Fatal(err)
	}
	jobs["dsn"] = takeBody(b, st, stageQueues["dsn"])
	for stage, j := range jobs {
		if j == "" {
			b.Fatalf("no %s job", stage)
		}
	}
	return jobs
}

// take receives n messages from a queue (with their attributes), failing
// b after 60 s: a parse job may be retried once (after 30 s) when it
// arrives before the raw message it names, which the gateway writes at the
// same time.
func take(b testing.TB, st *stack, name string, n int) []types.Message {
	b.Helper()
	var got []types.Message
	for deadline := time.Now().Add(60 * time.Second); len(got) < n; {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages in %s", len(got), n, name)
		}
		msgs, err := st.receive(b.Context(), name, int32(n-len(got)), time.Second)
		if err != nil {
			b.Fatal(err)
		}
		got = append(got, msgs...)
	}
	return got
}

// takeBody takes one message off a queue and returns its body.
func takeBody(b *testing.B, st *stack, name string) string {
	b.Helper()
	m := take(b, st, name, 1)[0]
	if _, err := st.sqs.DeleteMessage(b.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(st.queues[name].url), ReceiptHandle: m.ReceiptHandle}); err != nil {
		b.Fatal(err)
	}
	return aws.ToString(m.Body)
}

// sendCopies queues n copies of body, ten to a request.
func sendCopies(b *testing.B, st *stack, name, body string, n int) {
	b.Helper()
	for i := 0; i < n; i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j := i; j < min(i+10, n); j++ {
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(j)), MessageBody: aws.String(body)})
		}
		out, err := st.sqs.SendMessageBatch(b.Context(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(st.queues[name].url), Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			b.Fatalf("queue copies: %v %v", err, out)
		}
	}
}
