package awse2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/standin"
)

// rieEnv names the aws-lambda-rie binary; without it the test looks where
// scripts/ci/install-lambda-rie.sh puts it, then on PATH.
const rieEnv = "POSTERN_LAMBDA_RIE"

// locateRIE finds aws-lambda-rie, skipping t (failing it in CI or with
// POSTERN_REQUIRE_STANDINS=1) where it is not installed.
func locateRIE(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(rieEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", rieEnv, p, err)
		}
		return p
	}
	if p := filepath.Join(repoRoot(t), ".ci/cache/bin/aws-lambda-rie"); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p
	}
	msg := "aws-lambda-rie not found: run scripts/ci/install-lambda-rie.sh (or set " + rieEnv + ")"
	if os.Getenv(standin.RequireEnv) == "1" || os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestRuntimeInterfaceEmulator cross-checks the Runtime API harness with
// AWS's own emulator: the webhook function gets the same SQS event (a job
// for a webhook that answers 200, one for a webhook that answers 503, and
// a malformed one, which the function dead-letters) under
// internal/lambdart and under aws-lambda-rie, and must answer both with
// the same batchItemFailures: the 503 job only.
func TestRuntimeInterfaceEmulator(t *testing.T) {
	rie := locateRIE(t)
	standin.IsolateAWSEnv(t, standin.Region)
	t.Setenv(secretEnv, testSecret)
	fx := newFixture(t)
	up := newReceiver(t, http.StatusOK, "")
	down := newReceiver(t, http.StatusServiceUnavailable, "")
	st := newStack(t, fx, stackOptions{routes: hookRoute("up", "*@up.test", up.url) + hookRoute("down", "*@down.test", down.url), template: true})
	st.deploy(t, fx, "parse")

	msg, _ := scan(t)
	mustSend(t, st.smtpAddr(), "a@up.test", msg)
	mustSend(t, st.smtpAddr(), "b@down.test", msg)
	jobs := take(t, st, app.QueueWebhook, 2)
	var downID string
	for _, j := range jobs {
		var wj postern.WebhookJob
		if err := json.Unmarshal(body(t, j), &wj); err != nil {
			t.Fatal(err)
		}
		if wj.Route == "down" {
			downID = aws.ToString(j.MessageId)
		}
	}
	bad := types.Message{MessageId: aws.String("00000000-0000-4000-8000-000000000bad"), ReceiptHandle: aws.String("bad-receipt"),
		Body: aws.String(`{"v":1,"id":`), Attributes: map[string]string{"ApproximateReceiveCount": "1"}}
	m := st.mapping("webhook", nil)
	m.queue = st.queues[app.QueueWebhook]
	event, err := json.Marshal(m.event(append(jobs, bad)))
	if err != nil {
		t.Fatal(err)
	}
	want := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{{ItemIdentifier: downID}}}

	harness, err := st.function(t, fx, "webhook").Invoke(t.Context(), event)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	emulated := invokeRIE(t, rie, st, fx.bootstrap["webhook"], "webhook", event)
	for name, out := range map[string][]byte{"harness": harness, "aws-lambda-rie": emulated} {
		var got events.SQSEventResponse
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s response %q: %v", name, out, err)
		}
		if !slices.Equal(got.BatchItemFailures, want.BatchItemFailures) {
			t.Errorf("%s: batchItemFailures %+v, want %+v (the 503 job)", name, got.BatchItemFailures, want.BatchItemFailures)
		}
	}
	if !bytes.Equal(bytes.TrimSpace(harness), bytes.TrimSpace(emulated)) {
		t.Errorf("responses differ:\nharness:        %s\naws-lambda-rie: %s", harness, emulated)
	}
	if n := len(up.requests()); n != 2 {
		t.Errorf("the 200 webhook got %d requests, want one per invocation (2)", n)
	}
	// The malformed record went to the dead-letter queue once per invocation.
	for range 2 {
		if got := string(body(t, waitForMessage(t, st, app.QueueWebhook+"-dlq", 10*time.Second))); got != `{"v":1,"id":` {
			t.Errorf("webhook-dlq holds %q, want the malformed record", got)
		}
	}
}

// invokeRIE runs bootstrap under aws-lambda-rie with the stack's function
// environment for stage, invokes it once with event and returns the
// response body.
func invokeRIE(t *testing.T, rie string, st *stack, bootstrap, stage string, event []byte) []byte {
	t.Helper()
	port := freePort(t)
	apiPort := freePort(t)
	env := maps.Clone(st.env)
	maps.Copy(env, st.stageEnv[stage])
	maps.Copy(env, map[string]string{
		"AWS_ACCESS_KEY_ID":               standin.S3AccessKey,
		"AWS_SECRET_ACCESS_KEY":           standin.S3SecretKey,
		"AWS_REGION":                      standin.Region,
		"AWS_DEFAULT_REGION":              standin.Region,
		"AWS_LAMBDA_FUNCTION_NAME":        st.name + "-" + stage,
		"AWS_LAMBDA_FUNCTION_TIMEOUT":     fmt.Sprint(int(st.specs[stage].timeout / time.Second)),
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
		"PATH":                            "/usr/local/bin:/usr/bin:/bin",
		"HOME":                            t.TempDir(),
	})
	var environ []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		environ = append(environ, k+"="+env[k])
	}
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", port),
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", apiPort), bootstrap)
	cmd.Env = environ
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	url := fmt.Sprintf("http://127.0.0.1:%d/2015-03-31/functions/function/invocations", port)
	ctx, cancel := context.WithTimeout(t.Context(), st.specs[stage].timeout+30*time.Second)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(event))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		var op *net.OpError
		if errors.As(err, &op) && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond) // not listening yet
			continue
		}
		if err != nil {
			t.Fatalf("invoke through aws-lambda-rie: %v", err)
		}
		out, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("aws-lambda-rie: %s %q %v", resp.Status, out, err)
		}
		if strings.Contains(string(out), `"errorType"`) {
			t.Fatalf("aws-lambda-rie: the function failed: %s", out)
		}
		return out
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
