// Package lambdafn builds and runs one stage as an AWS Lambda function fed
// by its SQS queue. It holds what every stage shares (the AWS backend, the
// route table, the SQS adapter's wiring, the main); each stage's own part
// is a subpackage (parsefn, webhookfn, relayfn, dsnfn) that the stage's
// function main and the local process (internal/app) both call. A function
// binary links lambdafn and its one stage, nothing of the gateway (smtpd,
// spool) or of the other stages.
package lambdafn

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/configsrc"
	"github.com/postern/postern/internal/lambdasqs"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue"
	"github.com/postern/postern/internal/route"
	"github.com/postern/postern/internal/trace"
)

// Queue names, as internal/app names them: the queue each stage consumes
// and the keys of Deps.Queues.
const (
	QueueInbound = "inbound"
	QueueWebhook = "webhook"
	QueueRelay   = "relay"
	QueueDSN     = "dsn"
)

// StageQueue names the queue each stage consumes.
var StageQueue = map[string]string{"parse": QueueInbound, "webhook": QueueWebhook, "relay": QueueRelay, "dsn": QueueDSN}

// URLs links stored objects (pre-signed URLs on S3).
type URLs interface {
	URL(ctx context.Context, key string) (string, error)
}

// Deps is what a stage is built from.
type Deps struct {
	Config *config.Config
	Store  blob.Store
	// Queues by name (QueueInbound, ...): where a stage hands work on.
	Queues map[string]queue.Queue
	URLs   URLs // nil: payloads carry keys only
	Log    *slog.Logger
}

// Stage is one built stage.
type Stage struct {
	Handler postern.Handler
	// Budget is the longest one job may take, from its body (a webhook job
	// names its route, whose timeout bounds the call); the SQS adapter
	// starts a record only while that much time is left. Nil:
	// lambdasqs.DefaultBudget.
	Budget func(body []byte) time.Duration
	// Concurrency is how many records of a batch run at once unless
	// POSTERN_RECORD_CONCURRENCY says otherwise (see DefaultConcurrency).
	Concurrency int
}

// ConcurrencyEnv overrides a stage's record concurrency (template.yaml
// sets it per function).
const ConcurrencyEnv = "POSTERN_RECORD_CONCURRENCY"

// DefaultConcurrency is each stage's record concurrency when neither the
// stage nor ConcurrencyEnv sets one, sized by what a record waits on:
// webhook records wait on the application (mostly idle, so many at once);
// relay records on a smarthost or SES, which limit connections or rate;
// parse and dsn records use CPU and memory (a message and its parts in
// memory), so few at once in a small function.
var DefaultConcurrency = map[string]int{"parse": 4, "webhook": 16, "relay": 8, "dsn": 4}

// Build makes a stage from its dependencies. Each stage subpackage has one.
type Build func(ctx context.Context, d *Deps) (Stage, error)

// SQSHandler is what a Lambda function with an SQS event source runs.
type SQSHandler func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)

// Handler builds stage as a Lambda SQS handler on the aws backend: the S3
// store, the SQS queues, the stage's dead-letter queue (POSTERN_DLQ_*),
// and the adapter that turns a batch into handler calls.
func Handler(ctx context.Context, stage string, build Build, cfg *config.Config, log *slog.Logger) (SQSHandler, error) {
	qname, ok := StageQueue[stage]
	if !ok {
		return nil, fmt.Errorf("unknown stage %q", stage)
	}
	if cfg.Backend.Type != "aws" {
		return nil, fmt.Errorf("config: backend.type is %q; Lambda functions need \"aws\" (set POSTERN_BACKEND=aws)", cfg.Backend.Type)
	}
	be, err := OpenAWS(ctx, cfg.Backend.AWS, log)
	if err != nil {
		return nil, err
	}
	st, err := build(ctx, be.Deps(cfg, log))
	if err != nil {
		return nil, err
	}
	conc := cmp.Or(st.Concurrency, DefaultConcurrency[stage])
	if v := os.Getenv(ConcurrencyEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return nil, fmt.Errorf("config: %s=%q: want a whole number of records from 1 to 100 (the function's RecordConcurrency parameter)", ConcurrencyEnv, v)
		}
		conc = n
	}
	// The stage outcomes go to the log (CloudWatch Logs keeps them; gateway
	// trace reads them back), not to a trace object in S3: a
	// read-modify-write per stage would double the S3 requests per message.
	a := &lambdasqs.Adapter{Stage: stage, Handler: trace.Log(stage, st.Handler, log), Log: log, Metrics: os.Stdout,
		Visibility: be.SQS[qname], Budget: st.Budget, Concurrency: conc}
	if dl := be.DeadLetter(cfg.Backend.AWS, qname); dl != nil {
		a.DeadLetter = dl
	}
	return a.Handle, nil
}

// Main is the whole main of a stage's function: configuration (see
// LoadConfig), JSON logs to stdout (CloudWatch), then lambda.Start.
func Main(stage string, build Build) {
	// No stage attribute on the logger: the adapter and the stages add
	// their own.
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	if limit, ok := MemoryLimit(os.Getenv); ok {
		debug.SetMemoryLimit(limit)
	}
	cfg, err := LoadConfig(context.Background(), os.Getenv)
	if err != nil {
		log.Error("configuration", slog.String("stage", stage), slog.String("error", err.Error()))
		os.Exit(1)
	}
	h, err := Handler(context.Background(), stage, build, cfg, log)
	if err != nil {
		log.Error("start", slog.String("stage", stage), slog.String("error", err.Error()))
		os.Exit(1)
	}
	lambda.Start(h)
}

// MemoryLimit is the Go heap's soft limit in a Lambda function: 85% of its
// memory, leaving the rest to the runtime and stacks. Without it the
// collector lets the heap grow to twice what is live, and a function
// holding one large message (a 150 MiB Graph upload) is killed for memory
// with its batch unfinished. GOMEMLIMIT, when set, wins.
func MemoryLimit(getenv func(string) string) (int64, bool) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, false
	}
	mb, err := strconv.ParseInt(getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), 10, 64)
	if err != nil || mb <= 0 {
		return 0, false
	}
	return mb << 20 * 85 / 100, true
}

// LoadConfig reads the function's configuration once, at cold start: from
// the S3 object or SSM parameter POSTERN_CONFIG_URI names (configsrc), or,
// without it, from POSTERN_CONFIG_YAML or the file POSTERN_CONFIG names;
// the environment's overrides apply either way. The S3 client for the
// configuration uses POSTERN_AWS_REGION and POSTERN_S3_ENDPOINT as the
// store's does; an endpoint of its own (a stand-in) is addressed
// path-style, which the configuration, not yet read, cannot say.
func LoadConfig(ctx context.Context, getenv func(string) string) (*config.Config, error) {
	uri := getenv(configsrc.EnvURI)
	if uri == "" {
		return config.Load(getenv("POSTERN_CONFIG"), getenv)
	}
	var opts []func(*awsconfig.LoadOptions) error
	if r := getenv("POSTERN_AWS_REGION"); r != "" {
		opts = append(opts, awsconfig.WithRegion(r))
	}
	ac, err := awsclient.LoadConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: AWS configuration: %w", configsrc.EnvURI, err)
	}
	var s3opts []func(*s3.Options)
	if ep := getenv("POSTERN_S3_ENDPOINT"); ep != "" {
		s3opts = append(s3opts, func(o *s3.Options) { o.BaseEndpoint, o.UsePathStyle = aws.String(ep), true })
	}
	return configsrc.LoadConfig(ctx, uri, configsrc.NewClients(ac, s3opts...), getenv)
}

// RouteTable compiles the configuration's routes (the parse stage routes
// by it; the gateway refuses recipients no route takes).
func RouteTable(cfg *config.Config) (*route.Table, error) {
	var rules []route.Rule
	for _, r := range cfg.Routes {
		rule := route.Rule{
			Name:       r.Name,
			Recipients: r.Match.Recipients,
			Senders:    r.Match.Senders,
			Identities: r.Match.Identities,
			Headers:    r.Match.Headers,
			SPF:        r.Match.SPF,
			DKIM:       r.Match.DKIM,
			DMARC:      r.Match.DMARC,
		}
		switch {
		case r.Webhook != nil:
			rule.Target.Kind = route.KindWebhook
		case r.Directory != nil:
			rule.Target.Kind = route.KindDirectory
		case r.Relay != nil:
			rule.Target.Kind = route.KindRelay
		case r.Reject:
			rule.Target.Kind = route.KindReject
		}
		rules = append(rules, rule)
	}
	table, err := route.New(rules, route.WithInternet(Internet(cfg)))
	if err != nil {
		return nil, fmt.Errorf("config: routes: %w", err)
	}
	return table, nil
}

// Internet reports, by identity name, whose mail gets sender-authentication
// verdicts (identities[].internet); any other identity's mail is trusted.
func Internet(cfg *config.Config) func(identity string) bool {
	names := map[string]bool{}
	for _, id := range cfg.Identities {
		if id.Internet {
			names[id.Name] = true
		}
	}
	return func(identity string) bool { return names[identity] }
}

// AnyOf compiles address patterns into a matcher; no patterns is nil,
// which allows anything.
func AnyOf(patterns []string) (func(string) bool, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	ps := make([]route.Pattern, 0, len(patterns))
	for _, s := range patterns {
		p, err := route.ParsePattern(s)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return func(addr string) bool {
		for _, p := range ps {
			if p.Match(addr) {
				return true
			}
		}
		return false
	}, nil
}
