package ingest_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/blob/s3blob"
	"github.com/postern/postern/internal/ingest"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue/sqsqueue"
	"github.com/postern/postern/internal/standin"
)

// BenchmarkAcceptAWS is the AWS gateway's time from the body's first byte
// to 250 (Ingester.Accept) on the S3 stand-in (versitygw) and the SQS
// stand-in (fauxqs), beside what a single PUT of the same bytes takes
// there: the floor a store-then-queue accept would have. At 10 KiB the
// message travels in its ParseJob (one SQS send); at 1 MiB it is the raw
// PUT, then the send. path=accept over path=put is the gateway's overhead
// (goal: at most 1.3x); putobject is the SDK's PutObject without the
// store's uploader, for reference. One session, so the figures are
// latencies, not throughput.
func BenchmarkAcceptAWS(b *testing.B) {
	for _, size := range []int{10 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("size=%dKiB", size>>10), func(b *testing.B) { benchAcceptAWS(b, size) })
	}
}

func benchAcceptAWS(b *testing.B, size int) {
	s3ep, key, secret := standin.S3(b)
	sqsep := standin.SQS(b)
	hc := func() *http.Client {
		tr := &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second}
		b.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	// The HTTP client is set on each service (AWS_CA_BUNDLE may be set).
	s3c := s3.New(s3.Options{Region: standin.Region, BaseEndpoint: aws.String(s3ep), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(key, secret, ""), HTTPClient: awsclient.HTTPClient(hc())})
	sqsc := sqs.New(sqs.Options{Region: standin.Region, BaseEndpoint: aws.String(sqsep),
		Credentials: credentials.NewStaticCredentialsProvider(key, secret, ""), HTTPClient: awsclient.HTTPClient(hc())})
	name := "bench-" + strings.ToLower(rand.Text()[:10])
	if _, err := s3c.CreateBucket(b.Context(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		b.Fatalf("CreateBucket: %v", err)
	}
	q, err := sqsc.CreateQueue(b.Context(), &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		b.Fatalf("CreateQueue: %v", err)
	}
	store := s3blob.New(s3c, name, s3blob.Options{})
	in := ingest.New(store, sqsqueue.New(sqsc, aws.ToString(q.QueueUrl), sqsqueue.Options{}), slog.New(slog.DiscardHandler),
		ingest.InlineUpTo(postern.MaxInlineRaw)) // as the AWS backend has it
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), size/18+1)[:size]
	// Streamed as from the SMTP connection: the body is not seekable.
	stream := func() io.Reader { return struct{ io.Reader }{bytes.NewReader(body)} }

	newEnv := func() *postern.Envelope {
		return &postern.Envelope{ID: postern.NewMsgID(), Sender: "scanner@lan.example",
			Recipients: []postern.Recipient{{Addr: "invoices@app.test"}}, ReceivedAt: time.Now().UTC()}
	}
	ops := []func() error{
		func() error { return in.Accept(b.Context(), newEnv(), stream()) },
		func() error {
			return store.Put(b.Context(), postern.NewMsgID().RawKey(), stream(), &blob.PutOptions{ContentType: "message/rfc822"})
		},
		func() error {
			_, err := s3c.PutObject(b.Context(), &s3.PutObjectInput{Bucket: aws.String(name),
				Key: aws.String(postern.NewMsgID().RawKey()), Body: bytes.NewReader(body)})
			return err
		},
	}
	for _, op := range ops { // warm connections and the stand-ins' caches
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	// Each iteration runs all three, in a rotating order, so load on the
	// machine and the stand-ins' growth weigh on each alike.
	var took [3]time.Duration
	i := 0
	for b.Loop() {
		for j := range ops {
			k := (i + j) % len(ops)
			start := time.Now()
			if err := ops[k](); err != nil {
				b.Fatal(err)
			}
			took[k] += time.Since(start)
		}
		i++
	}
	n := float64(i)
	acceptMS, putMS, putObjectMS := took[0].Seconds()*1e3/n, took[1].Seconds()*1e3/n, took[2].Seconds()*1e3/n
	b.ReportMetric(acceptMS, "accept-ms")
	b.ReportMetric(putMS, "put-ms")
	b.ReportMetric(putObjectMS, "putobject-ms")
	b.ReportMetric(acceptMS/putMS, "accept/put")
	b.ReportMetric(acceptMS/putObjectMS, "accept/putobject")
	b.ReportMetric(0, "ns/op") // an iteration is three operations: see the metrics above
}
