package awse2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/standin"
	"github.com/postern/postern/internal/trace"
)

// On AWS, `gateway trace` puts together what the stages leave behind there:
// the message's receipt from the archive in S3 (the envelope inside
// parsed.json, as the parse function writes it) and each stage's outcome
// from the functions' log groups in CloudWatch Logs (moto's server).
func TestTraceOnAWSReadsTheLogGroups(t *testing.T) {
	// The stand-ins start (when first used) with this process's
	// environment, not the isolated one below.
	s3ep, key, secret := standin.S3(t)
	logsEP := standin.Moto(t)
	standin.IsolateAWSEnv(t, standin.Region)
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", logsEP)
	ctx := t.Context()

	bucket := "trace-" + strings.ToLower(rand.Text()[:10])
	s3c := newS3Client(t, s3ep, key, secret)
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	id := postern.NewMsgID()
	received := time.Now().UTC().Add(-time.Second).Truncate(time.Millisecond)
	env := postern.Envelope{V: postern.EnvelopeVersion, ID: id, Sender: "scanner@lan.test", Identity: "scanner",
		ClientIP: "192.0.2.7", ReceivedAt: received, Size: 1234, Recipients: []postern.Recipient{{Addr: "ops@app.test"}}}
	parsed, _ := json.Marshal(postern.Parsed{ID: id, Envelope: &env})
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(id.ParsedKey()), Body: bytes.NewReader(parsed)}); err != nil {
		t.Fatal(err)
	}

	// The outcome lines the functions would have logged.
	var parseOut, hookOut bytes.Buffer
	ok := postern.HandlerFunc(func(ctx context.Context, job postern.Job) error { trace.NoteStatus(ctx, 204); return nil })
	_ = trace.Log("parse", ok, slog.New(slog.NewJSONHandler(&parseOut, nil))).Handle(ctx, postern.Job{Body: []byte(`{"v":1,"id":"` + string(id) + `"}`), Attempt: 1})
	_ = trace.Log("webhook", ok, slog.New(slog.NewJSONHandler(&hookOut, nil))).Handle(ctx, postern.Job{Body: []byte(`{"v":1,"id":"` + string(id) + `","route":"app"}`), Attempt: 1})
	logs := cloudwatchlogs.New(cloudwatchlogs.Options{Region: standin.Region, BaseEndpoint: aws.String(logsEP),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), HTTPClient: awsclient.HTTPClient(&http.Client{Timeout: 30 * time.Second})})
	stack := "/postern/e2e-" + strings.ToLower(rand.Text()[:10])
	put := func(group, line string, at time.Time) {
		t.Helper()
		if _, err := logs.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)}); err != nil {
			t.Fatal(err)
		}
		if _, err := logs.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group), LogStreamName: aws.String("s")}); err != nil {
			t.Fatal(err)
		}
		if _, err := logs.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String("s"),
			LogEvents: []types.InputLogEvent{{Message: aws.String(strings.TrimSpace(line)), Timestamp: aws.Int64(at.UnixMilli())}}}); err != nil {
			t.Fatal(err)
		}
	}
	put(stack+"/parse", parseOut.String(), received.Add(100*time.Millisecond))
	put(stack+"/webhook", hookOut.String(), received.Add(200*time.Millisecond))

	cfg := config.Default()
	cfg.Backend.Type = "aws"
	cfg.Backend.AWS = config.AWS{Region: standin.Region, Bucket: bucket, S3Endpoint: s3ep, S3PathStyle: true,
		LogGroups: []string{stack + "/parse", stack + "/webhook"}}
	cfg.Routes = []config.Route{{Name: "app"}}
	events, err := app.Trace(ctx, cfg, slog.New(slog.DiscardHandler), id)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.Stage+"/"+e.Event)
	}
	if want := "gateway/received parse/done webhook/done"; strings.Join(got, " ") != want {
		t.Fatalf("timeline %v, want %s", got, want)
	}
	if events[2].Route != "app" || events[2].Status != 204 {
		t.Errorf("webhook event %+v, want route app, status 204", events[2])
	}

	cfg.Backend.AWS.LogGroups = nil
	if _, err := app.Trace(ctx, cfg, slog.New(slog.DiscardHandler), id); err == nil || !strings.Contains(err.Error(), "backend.aws.log_groups") {
		t.Errorf("trace without log groups: %v, want an error naming backend.aws.log_groups", err)
	}
}
