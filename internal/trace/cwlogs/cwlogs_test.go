package cwlogs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/standin"
	"github.com/postern/postern/internal/trace"
	"github.com/postern/postern/internal/trace/cwlogs"
)

// The functions' outcome lines, as trace.Log writes them to CloudWatch
// Logs, come back as the message's timeline: only its own outcome lines,
// from every group, in time order.
func TestReadFromCloudWatchLogs(t *testing.T) {
	t.Parallel()
	ep := standin.Moto(t)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	// The HTTP client is set on the service (AWS_CA_BUNDLE may be set).
	client := cloudwatchlogs.New(cloudwatchlogs.Options{Region: standin.Region, BaseEndpoint: aws.String(ep),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), HTTPClient: awsclient.HTTPClient(&http.Client{Transport: tr, Timeout: 30 * time.Second})})
	ctx := t.Context()
	stack := "e2e-" + strings.ToLower(rand.Text()[:10])
	parseGroup, webhookGroup := "/aws/lambda/"+stack+"-parse", "/aws/lambda/"+stack+"-webhook"

	id, other := postern.NewMsgID(), postern.NewMsgID()
	wj := func(id postern.MsgID) []byte { return []byte(`{"v":1,"id":"` + string(id) + `","route":"app"}`) }
	pj := func(id postern.MsgID) []byte { return []byte(`{"v":1,"id":"` + string(id) + `"}`) }
	lines := func(stage string, run func(h postern.Handler)) (out []string) {
		var buf bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&buf, nil)).With(slog.String("stage", stage))
		attempt := 0
		run(trace.Log(stage, postern.HandlerFunc(func(ctx context.Context, job postern.Job) error {
			attempt++
			log.Info("working", slog.String("msg_id", string(id))) // a stage's own line naming the id
			if stage == "webhook" && attempt == 1 {
				trace.NoteStatus(ctx, 503)
				return errors.New("http; 503 Service Unavailable")
			}
			trace.NoteStatus(ctx, 200)
			return nil
		}), log))
		return strings.Split(strings.TrimSpace(buf.String()), "\n")
	}
	parseLines := lines("parse", func(h postern.Handler) {
		_ = h.Handle(ctx, postern.Job{Body: pj(id), Attempt: 1})
		_ = h.Handle(ctx, postern.Job{Body: pj(other), Attempt: 1})
	})
	webhookLines := lines("webhook", func(h postern.Handler) {
		_ = h.Handle(ctx, postern.Job{Body: wj(id), Attempt: 1})
		_ = h.Handle(ctx, postern.Job{Body: wj(id), Attempt: 2})
	})
	now := time.Now()
	put := func(group string, lines []string) {
		if _, err := client.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)}); err != nil {
			t.Fatalf("CreateLogGroup: %v", err)
		}
		stream := "2026/12/05/[$LATEST]" + strings.ToLower(rand.Text()[:8])
		if _, err := client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream)}); err != nil {
			t.Fatalf("CreateLogStream: %v", err)
		}
		var evs []types.InputLogEvent
		for i, l := range lines {
			evs = append(evs, types.InputLogEvent{Message: aws.String(l), Timestamp: aws.Int64(now.Add(time.Duration(i) * time.Millisecond).UnixMilli())})
		}
		if _, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream), LogEvents: evs}); err != nil {
			t.Fatalf("PutLogEvents: %v", err)
		}
	}
	put(parseGroup, parseLines)
	put(webhookGroup, webhookLines)

	evs, err := cwlogs.Read(ctx, client, []string{webhookGroup, parseGroup}, id, now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Stage+"/"+e.Event)
	}
	want := []string{"parse/done", "webhook/retry", "webhook/done"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("timeline %v, want %v", got, want)
	}
	if evs[1].Status != 503 || evs[2].Status != 200 || evs[2].Attempt != 2 || evs[2].Route != "app" {
		t.Errorf("webhook events %+v %+v", evs[1], evs[2])
	}

	if _, err := cwlogs.Read(ctx, client, []string{"/aws/lambda/" + stack + "-missing"}, id, now.Add(-time.Minute)); err == nil || !strings.Contains(err.Error(), stack+"-missing") {
		t.Errorf("Read of a missing group: %v, want an error naming it", err)
	}
}
