package awse2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/lambdart"
	"github.com/postern/postern/internal/standin"
)

// Stage queues, by the stage that consumes them.
var stageQueues = map[string]string{"parse": app.QueueInbound, "webhook": app.QueueWebhook, "relay": app.QueueRelay, "dsn": app.QueueDSN}

// queueSpec is how a test deployment makes each queue: short visibility
// timeouts, so a record reported as failed comes back within seconds, and
// small receive counts before the dead-letter queue (the template's are
// 360 s and 10 to 1000).
var queueSpec = map[string]struct{ visibility, maxReceives int }{
	app.QueueInbound: {2, 2},
	app.QueueWebhook: {2, 3},
	app.QueueRelay:   {30, 5},
	app.QueueDSN:     {30, 5},
}

// queueRef names one SQS queue.
type queueRef struct{ url, arn string }

// stack is one deployment, as template.yaml makes it: a bucket, four
// queues with dead-letter queues, the function environment, and the
// gateway in AWS mode in this process.
type stack struct {
	name   string
	bucket string
	s3     *s3.Client
	sqs    *sqs.Client
	queues map[string]queueRef // by name; "<name>-dlq" for dead-letter queues
	// env is what every function gets (template.yaml's Globals, with the
	// stand-in endpoints); the gateway container gets the same.
	env map[string]string
	gw  *app.App
	// specs are the template's numbers, by stage. Every stack gives its
	// functions the template's timeouts; with template set it follows the
	// rest too (see stackOptions.template).
	specs    map[string]stageSpec
	template bool
	// stageEnv is added to env for one stage's function.
	stageEnv map[string]map[string]string
}

type stackOptions struct {
	// routes is the YAML list under routes:.
	routes string
	// s3 and sqs replace the shared stand-ins (fault tests stop their own).
	s3Endpoint, sqsEndpoint string
	s3                      *s3.Client
	sqs                     *sqs.Client
	// config is more top-level configuration YAML (identities:, dsn:).
	config string
	// template makes the stack as template.yaml does: each queue's
	// visibility timeout and receive count, each event source mapping's
	// batch size, window and concurrency, each function's timeout and the
	// variables the template gives it besides the stack's own
	// (POSTERN_DLQ_*, POSTERN_RECORD_CONCURRENCY). Else queueSpec's short
	// numbers, one instance per function and no dead-letter variables (only
	// the timeouts are the template's).
	template bool
}

// newStack deploys a stack on the stand-ins and boots its gateway.
func newStack(t testing.TB, fx *fixture, opts stackOptions) *stack {
	t.Helper()
	st := &stack{
		name: "e2e-" + strings.ToLower(rand.Text()[:10]),
		s3:   fx.s3, sqs: fx.sqs, queues: map[string]queueRef{},
	}
	st.stageEnv = map[string]map[string]string{}
	st.specs, st.template = templateSpecs(t), opts.template
	s3ep, sqsep := fx.s3Endpoint, fx.sqsEndpoint
	if opts.s3 != nil {
		st.s3, s3ep = opts.s3, opts.s3Endpoint
	}
	if opts.sqs != nil {
		st.sqs, sqsep = opts.sqs, opts.sqsEndpoint
	}
	st.bucket = st.name
	if _, err := st.s3.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(st.bucket)}); err != nil {
		t.Fatalf("CreateBucket(%s): %v", st.bucket, err)
	}
	st.createQueues(t)

	// The configuration YAML (the template's SSM parameter), with
	// path-style addressing, which has no environment variable.
	yaml := `backend:
  aws:
    s3_path_style: true
tls:
  disable: true
limits:
  store_timeout: 30s
delivery:
  inline_attachment_bytes: 1024
routes:
` + opts.routes + opts.config
	st.env = map[string]string{
		"POSTERN_BACKEND":       "aws",
		"POSTERN_AWS_REGION":    standin.Region,
		"POSTERN_DATA_DIR":      t.TempDir(), // /tmp/postern on Lambda
		secretEnv:               testSecret,
		"POSTERN_BUCKET":        st.bucket,
		"POSTERN_QUEUE_INBOUND": st.queues[app.QueueInbound].url,
		"POSTERN_QUEUE_WEBHOOK": st.queues[app.QueueWebhook].url,
		"POSTERN_QUEUE_RELAY":   st.queues[app.QueueRelay].url,
		"POSTERN_QUEUE_DSN":     st.queues[app.QueueDSN].url,
		"POSTERN_S3_ENDPOINT":   s3ep,
		"POSTERN_SQS_ENDPOINT":  sqsep,
		"POSTERN_CONFIG_YAML":   yaml,
	}
	if st.template {
		st.templateEnv(t)
	}
	st.bootGateway(t)
	return st
}

// templateEnv gives each function the variables the template gives it
// that the stack's env does not set, with references to the template's
// queues turned into the stack's queue URLs.
func (st *stack) templateEnv(t testing.TB) {
	t.Helper()
	for stage, spec := range st.specs {
		env := map[string]string{}
		for k, v := range spec.env {
			if _, ok := st.env[k]; ok || k == "POSTERN_DATA_DIR" {
				continue
			}
			if m := refPattern.FindStringSubmatch(v); m != nil {
				name := stackQueue(st.specs, m[1])
				if name == "" {
					continue // a resource the stand-ins do not have (the bucket is in env)
				}
				v = st.queues[name].url
			}
			env[k] = v
		}
		if _, ok := env["POSTERN_CONFIG_URI"]; ok {
			// As scripts/deploy does: the configuration as an object in the
			// stack's bucket, named by the URI, and none inline.
			env["POSTERN_CONFIG_URI"] = "s3://" + st.bucket + "/" + configKey
			env["POSTERN_CONFIG_YAML"] = ""
		}
		st.stageEnv[stage] = env
	}
	if _, err := st.s3.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(st.bucket), Key: aws.String(configKey),
		Body: strings.NewReader(st.env["POSTERN_CONFIG_YAML"])}); err != nil {
		t.Fatalf("put the configuration object: %v", err)
	}
}

// configKey is where a stack following the template keeps the functions'
// configuration.
const configKey = "config/postern-e2e.yaml"

// createQueues makes the stack's queues (again, after an SQS stand-in
// restart: fauxqs forgets them, and the same names give the same URLs).
func (st *stack) createQueues(t testing.TB) {
	t.Helper()
	for _, name := range []string{app.QueueInbound, app.QueueWebhook, app.QueueRelay, app.QueueDSN} {
		spec := queueSpec[name]
		for stage, s := range st.specs {
			if st.template && stageQueues[stage] == name {
				spec.visibility, spec.maxReceives = int(s.visibility/time.Second), s.maxReceives
			}
		}
		dlq := st.createQueue(t, name+"-dlq", nil)
		policy, err := json.Marshal(map[string]any{"deadLetterTargetArn": dlq.arn, "maxReceiveCount": spec.maxReceives})
		if err != nil {
			t.Fatal(err)
		}
		st.createQueue(t, name, map[string]string{
			string(types.QueueAttributeNameVisibilityTimeout): strconv.Itoa(spec.visibility),
			string(types.QueueAttributeNameRedrivePolicy):     string(policy),
		})
	}
}

func (st *stack) createQueue(t testing.TB, name string, attrs map[string]string) queueRef {
	t.Helper()
	ctx := t.Context()
	full := st.name + "-" + name
	out, err := st.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(full), Attributes: attrs})
	if err != nil {
		t.Fatalf("CreateQueue(%s): %v", full, err)
	}
	got, err := st.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: out.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes(%s): %v", full, err)
	}
	ref := queueRef{url: aws.ToString(out.QueueUrl), arn: got.Attributes[string(types.QueueAttributeNameQueueArn)]}
	if ref.arn == "" {
		t.Fatalf("queue %s has no ARN", full)
	}
	st.queues[name] = ref
	return ref
}

// bootGateway runs the gateway as its container would: configuration from
// the same environment as the functions, with its own listeners. Its AWS
// credentials come from the default chain (the environment TestAWSMode
// sets).
func (st *stack) bootGateway(t testing.TB) {
	t.Helper()
	env := maps.Clone(st.env)
	env["POSTERN_HOSTNAME"] = "gw.test"
	env["POSTERN_DATA_DIR"] = t.TempDir()
	env["POSTERN_SMTP_ADDR"] = "127.0.0.1:0"
	env["POSTERN_ADMIN_ADDR"] = "127.0.0.1:0"
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("gateway config: %v", err)
	}
	a, err := app.New(cfg, slog.New(slog.NewJSONHandler(t.Output(), nil)))
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway Run: %v", err)
		}
	})
	st.gw = a
}

// function runs a stage's bootstrap under the Runtime API harness with the
// stack's environment, as the stage's Lambda function.
func (st *stack) function(t testing.TB, fx *fixture, stage string) *lambdart.Runtime {
	t.Helper()
	all := maps.Clone(st.env)
	maps.Copy(all, st.stageEnv[stage])
	var env []string
	for _, k := range slices.Sorted(maps.Keys(all)) {
		env = append(env, k+"="+all[k])
	}
	timeout := st.specs[stage].timeout // the function's Timeout
	r, err := lambdart.Start(lambdart.Config{
		Timeout:         timeout,
		Bootstrap:       fx.bootstrap[stage],
		FunctionName:    st.name + "-" + stage,
		Region:          standin.Region,
		AccessKeyID:     standin.S3AccessKey,
		SecretAccessKey: standin.S3SecretKey,
		Env:             env,
		Output:          t.Output(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("close %s function: %v", stage, err)
		}
	})
	return r
}

// maxInstances bounds the execution environments (processes) one stage
// runs here when the template allows more (MaximumConcurrency is 20 to
// 100 and this machine has a few CPUs).
const maxInstances = 3

// deploy runs each stage's function and maps its queue to it, as the
// template's SQS events do, until t ends: with the template's numbers,
// min(MaximumConcurrency, maxInstances) instances, each polled by its own
// mapping, as Lambda scales concurrent invocations.
func (st *stack) deploy(t testing.TB, fx *fixture, stages ...string) {
	t.Helper()
	for _, stage := range stages {
		n := 1
		if s, ok := st.specs[stage]; ok && st.template {
			n = min(s.maxConcurrency, maxInstances)
		}
		for range n {
			fn := st.function(t, fx, stage)
			// Initialised before it is mapped, as provisioned concurrency
			// would be: its cold start (the configuration read) happens
			// before the test's traffic, whichever instance takes it.
			if _, err := fn.Invoke(t.Context(), []byte(`{"Records":[]}`)); err != nil {
				t.Fatalf("%s function: first invocation: %v", stage, err)
			}
			st.mapping(stage, fn).start(t)
		}
	}
}

// mapping is the event source mapping of stage's queue to fn, with the
// template's batch size and window when the stack follows it.
func (st *stack) mapping(stage string, fn *lambdart.Runtime) *mapping {
	m := &mapping{sqs: st.sqs, queue: st.queues[stageQueues[stage]], fn: fn, batchSize: 10}
	if s, ok := st.specs[stage]; ok && st.template {
		m.batchSize, m.window = s.batchSize, s.window
	}
	return m
}

// smtpAddr is the gateway's SMTP address.
func (st *stack) smtpAddr() string { return st.gw.SMTPAddrs()[0].String() }
