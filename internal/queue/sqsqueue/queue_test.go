package sqsqueue_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/postern/postern/internal/queue"
	"github.com/postern/postern/internal/queue/sqsqueue"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// bodies are what the port may carry: text SQS takes as it is, and bytes
// it refuses.
func bodies() map[string][]byte {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := make([]byte, 64<<10)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(big)
	return map[string][]byte{
		"json":          []byte(`{"v":1,"msg_id":"01JABCDEF","subject":"Grüße ✓","crlf":"\r\n.\r\n"}`),
		"json, emoji":   []byte(`{"v":1,"subject":"🚀"}`),
		"one byte":      []byte("x"),
		"every byte":    all,
		"nul":           {0},
		"invalid utf-8": {0xff, 0xfe, 'a'},
		"surrogate":     {0xed, 0xa0, 0x80},
		"U+FFFE":        []byte("a\uFFFEb"),
		"control":       []byte("a\x01b\x1f"),
		"64 KiB random": big,
	}
}

// TestBodies checks both that every body comes back byte for byte and how
// it travels: text as it is (readable in the console and in dead-letter
// queues), anything else as base64 marked by the body-encoding attribute.
func TestBodies(t *testing.T) {
	t.Parallel()
	client := newClient(t)

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t)
		q := sqsqueue.New(client, createQueue(t, client, "", nil), sqsqueue.Options{Logger: testLogger(t)})
		want := map[string]string{} // id -> case
		for name, b := range bodies() {
			id, err := q.Send(ctx, b, 0)
			if err != nil {
				t.Fatalf("Send(%s): %v", name, err)
			}
			want[id] = name
		}
		// A bound against hanging, not a speed test: the stand-in (Node) on a
		// machine busy with -race builds once took over 10 s to hand them out.
		for deadline := time.Now().Add(30 * time.Second); len(want) > 0 && time.Now().Before(deadline); {
			msgs, err := q.Receive(ctx, 10, time.Minute, time.Second)
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			for _, m := range msgs {
				name, ok := want[m.ID]
				if !ok {
					t.Fatalf("received unknown or repeated id %q", m.ID)
				}
				delete(want, m.ID)
				if !bytes.Equal(m.Body, bodies()[name]) {
					t.Errorf("%s: body came back as %q", name, m.Body)
				}
			}
		}
		if len(want) > 0 {
			t.Errorf("never received: %v", want)
		}
	})

	t.Run("Wire", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t)
		url := createQueue(t, client, "", nil)
		q := sqsqueue.New(client, url, sqsqueue.Options{})
		want := map[string]string{}
		for name, b := range bodies() {
			id, err := q.Send(ctx, b, 0)
			if err != nil {
				t.Fatalf("Send(%s): %v", name, err)
			}
			want[id] = name
		}
		for deadline := time.Now().Add(30 * time.Second); len(want) > 0 && time.Now().Before(deadline); {
			out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
				QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60,
				MessageAttributeNames: []string{"All"},
			})
			if err != nil {
				t.Fatalf("ReceiveMessage: %v", err)
			}
			for _, m := range out.Messages {
				name := want[aws.ToString(m.MessageId)]
				delete(want, aws.ToString(m.MessageId))
				sent := bodies()[name]
				enc := aws.ToString(m.MessageAttributes[sqsqueue.BodyEncodingAttribute].StringValue)
				switch name {
				case "json", "one byte":
					if enc != "" || aws.ToString(m.Body) != string(sent) {
						t.Errorf("%s: went as %q with encoding %q, want as it is", name, aws.ToString(m.Body), enc)
					}
				default:
					if enc != sqsqueue.EncodingBase64 {
						t.Errorf("%s: encoding attribute %q, want %q", name, enc, sqsqueue.EncodingBase64)
					}
				}
				got, err := sqsqueue.DecodeBody(aws.ToString(m.Body), enc)
				if err != nil || !bytes.Equal(got, sent) {
					t.Errorf("%s: DecodeBody = %q, %v", name, got, err)
				}
			}
		}
		if len(want) > 0 {
			t.Errorf("never received: %v", want)
		}
	})
}

// TestReceiptErrors: the server's answers about receipts map to
// ErrInvalidReceipt, and other failures do not.
func TestReceiptErrors(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	client := newClient(t)
	q := sqsqueue.New(client, createQueue(t, client, "", nil), sqsqueue.Options{})
	if _, err := q.Send(ctx, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	msgs, err := q.Receive(ctx, 1, time.Minute, 2*time.Second)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive = %d messages, %v", len(msgs), err)
	}
	if err := q.ChangeVisibility(ctx, "not-a-receipt", 0); !errors.Is(err, queue.ErrInvalidReceipt) {
		t.Errorf("ChangeVisibility(not-a-receipt) = %v, want ErrInvalidReceipt", err)
	}
	if err := q.Delete(ctx, msgs[0].Receipt); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := q.ChangeVisibility(ctx, msgs[0].Receipt, time.Second); !errors.Is(err, queue.ErrInvalidReceipt) {
		t.Errorf("ChangeVisibility after Delete = %v, want ErrInvalidReceipt", err)
	}
	if err := q.Delete(ctx, ""); !errors.Is(err, queue.ErrInvalidReceipt) {
		t.Errorf("Delete(\"\") = %v, want ErrInvalidReceipt", err)
	}

	gone := sqsqueue.New(client, endpoint(t)+"/000000000000/no-such-queue", sqsqueue.Options{})
	if err := gone.Delete(ctx, msgs[0].Receipt); err == nil || errors.Is(err, queue.ErrInvalidReceipt) {
		t.Errorf("Delete on a missing queue = %v, want an error other than ErrInvalidReceipt", err)
	}
	if err := gone.ChangeVisibility(ctx, msgs[0].Receipt, 0); err == nil || errors.Is(err, queue.ErrInvalidReceipt) {
		t.Errorf("ChangeVisibility on a missing queue = %v, want an error other than ErrInvalidReceipt", err)
	}
	if _, err := gone.Send(ctx, []byte("x"), 0); err == nil {
		t.Error("Send to a missing queue succeeded")
	}
}

// TestStandinDeleteAcceptsAnyReceipt pins the fauxqs quirk that
// receiptCheck makes up for. When it fails, fauxqs has started refusing
// unknown receipt handles as SQS does, and receiptCheck can go.
func TestStandinDeleteAcceptsAnyReceipt(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	client := newClient(t)
	url := createQueue(t, client, "", nil)
	_, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: aws.String("not-a-receipt")})
	if err != nil {
		t.Errorf("fauxqs now refuses an unknown receipt handle (%v): drop receiptCheck from the tests", err)
	}
}

// TestStats reads the three counts after sends, a delayed send, receives
// and a delete.
func TestStats(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	client := newClient(t)
	q := sqsqueue.New(client, createQueue(t, client, "", nil), sqsqueue.Options{})
	check := func(want sqsqueue.Stats) {
		t.Helper()
		got, err := q.Stats(ctx)
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		if got != want {
			t.Errorf("Stats = %+v, want %+v", got, want)
		}
	}
	check(sqsqueue.Stats{})
	for _, b := range []string{"a", "b", "c"} {
		if _, err := q.Send(ctx, []byte(b), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Send(ctx, []byte("later"), time.Minute); err != nil {
		t.Fatal(err)
	}
	check(sqsqueue.Stats{Visible: 3, Delayed: 1})
	msgs, err := q.Receive(ctx, 2, time.Minute, time.Second)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("Receive(2) = %d messages, %v", len(msgs), err)
	}
	check(sqsqueue.Stats{Visible: 1, InFlight: 2, Delayed: 1})
	if err := q.Delete(ctx, msgs[0].Receipt); err != nil {
		t.Fatal(err)
	}
	check(sqsqueue.Stats{Visible: 1, InFlight: 1, Delayed: 1})
}

// TestContextEnds: a long poll ends at its ctx's deadline with an error
// wrapping it, and no call goes out on a cancelled ctx.
func TestContextEnds(t *testing.T) {
	t.Parallel()
	client := newClient(t)
	q := sqsqueue.New(client, createQueue(t, client, "", nil), sqsqueue.Options{})

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	msgs, err := q.Receive(ctx, 1, time.Minute, 10*time.Second)
	if d := time.Since(start); d > 1300*time.Millisecond {
		t.Errorf("Receive returned %s after start, deadline was 300ms", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Receive past deadline = %d messages, %v; want an error wrapping DeadlineExceeded", len(msgs), err)
	}

	dead, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := q.Send(dead, []byte("x"), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Send = %v, want context.Canceled", err)
	}
	if err := q.Delete(dead, "r"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete = %v, want context.Canceled", err)
	}
	if err := q.ChangeVisibility(dead, "r", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("ChangeVisibility = %v, want context.Canceled", err)
	}
	if _, err := q.Stats(dead); !errors.Is(err, context.Canceled) {
		t.Errorf("Stats = %v, want context.Canceled", err)
	}
}

// countingTransport counts the requests it carries.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// TestNewClient builds a client the way the application does (default
// config loading, which on this machine includes AWS_CA_BUNDLE) and uses
// it, through the HTTP client given for SQS, against the stand-in.
func TestNewClient(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	ep := endpoint(t)
	tr := &countingTransport{}
	client, err := sqsqueue.NewClient(ctx, sqsqueue.ClientConfig{
		Region:      "us-east-1",
		Endpoint:    ep,
		HTTPClient:  &http.Client{Transport: tr},
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	q := sqsqueue.New(client, createQueue(t, client, "", nil), sqsqueue.Options{})
	id, err := q.Send(ctx, []byte("hello"), 0)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs, err := q.Receive(ctx, 1, time.Minute, 2*time.Second)
	if err != nil || len(msgs) != 1 || msgs[0].ID != id || string(msgs[0].Body) != "hello" {
		t.Fatalf("Receive = %+v, %v", msgs, err)
	}
	if tr.n.Load() < 3 {
		t.Errorf("the given HTTP client carried %d requests, want every one (at least 3)", tr.n.Load())
	}
	if q.Name() == "" || !strings.HasSuffix(q.URL(), "/"+q.Name()) {
		t.Errorf("Name %q is not the last segment of URL %q", q.Name(), q.URL())
	}
}
