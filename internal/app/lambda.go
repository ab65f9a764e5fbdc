package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/lambdasqs"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue/sqsqueue"
	"github.com/postern/postern/internal/trace"
)

// SQSHandler is what a Lambda function with an SQS event source runs.
type SQSHandler func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)

// stageQueue names the queue each stage consumes.
var stageQueue = map[string]string{"parse": QueueInbound, "webhook": QueueWebhook, "relay": QueueRelay, "dsn": QueueDSN}

// LambdaHandler builds one stage as a Lambda SQS handler on the aws backend.
func LambdaHandler(ctx context.Context, stage string, cfg *config.Config, log *slog.Logger) (SQSHandler, error) {
	qname, ok := stageQueue[stage]
	if !ok {
		return nil, fmt.Errorf("unknown stage %q", stage)
	}
	if cfg.Backend.Type != "aws" {
		return nil, fmt.Errorf("config: backend.type is %q; Lambda functions need \"aws\" (set POSTERN_BACKEND=aws)", cfg.Backend.Type)
	}
	be, err := openBackend(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	st, err := buildStages(cfg, be, log, stage)
	if err != nil {
		return nil, err
	}
	var h postern.Handler
	switch stage {
	case "parse":
		h = st.parse
	case "webhook":
		h = st.webhook
	case "relay":
		h = st.relay
	case "dsn":
		h = st.dsn
	}
	a := &lambdasqs.Adapter{Stage: stage, Handler: trace.Wrap(stage, h, be.store, log), Log: log, Metrics: os.Stdout}
	if q, ok := be.queues[qname].(*sqsqueue.Queue); ok {
		a.Visibility = q
	}
	dl := cfg.Backend.AWS.DeadLetter
	if url := map[string]string{QueueInbound: dl.Inbound, QueueWebhook: dl.Webhook, QueueRelay: dl.Relay, QueueDSN: dl.DSN}[qname]; url != "" {
		a.DeadLetter = be.sqsQueue(url)
	}
	return a.Handle, nil
}

// LambdaMain is the whole main of a stage's function: configuration from
// the environment (POSTERN_CONFIG_YAML or POSTERN_CONFIG plus overrides),
// JSON logs to stdout (CloudWatch), then lambda.Start.
func LambdaMain(stage string) {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil)).With(slog.String("stage", stage))
	cfg, err := config.Load(os.Getenv("POSTERN_CONFIG"), os.Getenv)
	if err != nil {
		log.Error("configuration", slog.String("error", err.Error()))
		os.Exit(1)
	}
	h, err := LambdaHandler(context.Background(), stage, cfg, log)
	if err != nil {
		log.Error("start", slog.String("error", err.Error()))
		os.Exit(1)
	}
	lambda.Start(h)
}
