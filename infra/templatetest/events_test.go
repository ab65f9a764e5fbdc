package templatetest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/postern/postern/internal/lambdasqs"
	"github.com/postern/postern/internal/postern"
)

// TestSampleEvents: infra/events/<stage>.json is what `sam local invoke`
// feeds each function. Each must be an SQS event from that stage's queue
// whose body is a current job of the stage's type (no unknown fields), and
// must pass through the Lambda adapter to the handler unchanged.
func TestSampleEvents(t *testing.T) {
	t.Parallel()
	jobType := map[string]func() any{
		"parse":   func() any { return new(postern.ParseJob) },
		"webhook": func() any { return new(postern.WebhookJob) },
		"relay":   func() any { return new(postern.RelayJob) },
		"dsn":     func() any { return new(postern.DSNJob) },
	}
	dir := filepath.Join(repoRoot(t), "infra", "events")
	for _, s := range stages {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(filepath.Join(dir, s.name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var ev events.SQSEvent
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ev); err != nil {
				t.Fatalf("not an SQS event: %v", err)
			}
			if len(ev.Records) == 0 {
				t.Fatal("no records")
			}
			for _, rec := range ev.Records {
				if rec.EventSource != "aws:sqs" || !strings.Contains(rec.EventSourceARN, "-"+s.queue+"-") {
					t.Errorf("record from %s %s, want aws:sqs from the %s", rec.EventSource, rec.EventSourceARN, s.queue)
				}
				if sum := md5.Sum([]byte(rec.Body)); hex.EncodeToString(sum[:]) != rec.Md5OfBody {
					t.Errorf("md5OfBody %s does not match the body", rec.Md5OfBody)
				}
				if rec.Attributes["ApproximateReceiveCount"] == "" {
					t.Error("no ApproximateReceiveCount (the adapter reads the attempt from it)")
				}
				job := jobType[s.name]()
				jd := json.NewDecoder(strings.NewReader(rec.Body))
				jd.DisallowUnknownFields()
				if err := jd.Decode(job); err != nil {
					t.Fatalf("body is not a %T: %v", job, err)
				}
				v, id, env := jobFields(job)
				if v != postern.JobVersion {
					t.Errorf("job v %d, want %d", v, postern.JobVersion)
				}
				if _, err := postern.ParseMsgID(string(id)); err != nil {
					t.Error(err)
				}
				if env.ID != id || len(env.Recipients) == 0 {
					t.Errorf("envelope id %s (job %s), %d recipients", env.ID, id, len(env.Recipients))
				}
			}

			var mu sync.Mutex
			var got [][]byte
			a := &lambdasqs.Adapter{
				Stage: s.name,
				Handler: postern.HandlerFunc(func(_ context.Context, j postern.Job) error {
					mu.Lock()
					defer mu.Unlock()
					got = append(got, j.Body)
					return nil
				}),
				Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
			}
			resp, err := a.Handle(context.Background(), ev)
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("adapter: %v, failures %v", err, resp.BatchItemFailures)
			}
			if len(got) != len(ev.Records) || string(got[0]) != ev.Records[0].Body {
				t.Errorf("the handler got %q, want the record bodies", got)
			}
		})
	}
}

func jobFields(job any) (int, postern.MsgID, postern.Envelope) {
	switch j := job.(type) {
	case *postern.ParseJob:
		return j.V, j.ID, j.Envelope
	case *postern.WebhookJob:
		return j.V, j.ID, j.Envelope
	case *postern.RelayJob:
		return j.V, j.ID, j.Envelope
	case *postern.DSNJob:
		return j.V, j.ID, j.Envelope
	}
	panic(fmt.Sprintf("unknown job %T", job))
}

// TestLocalInvokeEnvironment: infra/events/env.json may only name variables
// the template declares (SAM ignores the rest), and its configuration loads.
func TestLocalInvokeEnvironment(t *testing.T) {
	t.Parallel()
	var doc struct {
		Parameters map[string]string
	}
	if err := json.Unmarshal([]byte(mustRead(t, filepath.Join(repoRoot(t), "infra", "events", "env.json"))), &doc); err != nil {
		t.Fatal(err)
	}
	tpl := loadTemplate(t)
	r := resolveWith(t, tpl, features)
	declared := functionEnv(r.Resources["ParseFunction"])
	for k := range doc.Parameters {
		if _, ok := declared[k]; !ok {
			t.Errorf("env.json sets %s, which the template does not declare: sam local invoke would ignore it", k)
		}
	}
	if doc.Parameters["POSTERN_S3_ENDPOINT"] == "" || doc.Parameters["POSTERN_SQS_ENDPOINT"] == "" {
		t.Error("env.json does not point the functions at local stand-ins")
	}
	if _, err := DecodeYAML([]byte(doc.Parameters["POSTERN_CONFIG_YAML"])); err != nil {
		t.Errorf("env.json POSTERN_CONFIG_YAML: %v", err)
	}
	// A committed file holds no key-shaped secret, not even a published
	// example one: scanners cannot tell it from a leaked key.
	if strings.Contains(doc.Parameters["POSTERN_CONFIG_YAML"], "whsec_") {
		t.Error("env.json POSTERN_CONFIG_YAML holds a whsec_ key; write a plain placeholder text")
	}
	// The inline configuration, not the stack's S3 object or parameter.
	if uri, set := doc.Parameters["POSTERN_CONFIG_URI"]; !set || uri != "" {
		t.Errorf("env.json POSTERN_CONFIG_URI = %q (set %v); empty it so the functions read POSTERN_CONFIG_YAML", uri, set)
	}
}
