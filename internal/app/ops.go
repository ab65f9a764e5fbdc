package app

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
	"github.com/postern/postern/internal/trace/cwlogs"
)

// The operations below work without a running gateway: trace reads the
// store (which a running gateway does not lock), replay and redrive open
// the queues (locally only when no gateway holds them; the CLI asks a
// running gateway through its admin API first).

func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (blob.Store, func() error, error) {
	if cfg.Backend.Type == "aws" {
		st, err := newS3Store(ctx, cfg.Backend.AWS)
		if err != nil {
			return nil, nil, err
		}
		return st, func() error { return nil }, nil
	}
	st, err := fsblob.New(cfg.Path("store"), fsblob.Options{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	return st, st.Close, nil
}

// Trace returns a message's timeline.
func Trace(ctx context.Context, cfg *config.Config, log *slog.Logger, id postern.MsgID) ([]trace.Event, error) {
	st, closeStore, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	names := make([]string, len(cfg.Routes))
	for i, r := range cfg.Routes {
		names[i] = r.Name
	}
	events, err := trace.Read(ctx, st, id, names)
	if err != nil || cfg.Backend.Type != "aws" || len(events) == 0 {
		return events, err
	}
	// On AWS the functions log each job's outcome instead of keeping trace
	// objects: the timeline's later events are in their log groups.
	groups := cfg.Backend.AWS.LogGroups
	if len(groups) == 0 {
		return events, errors.New("config: backend.aws.log_groups is empty: name the functions' log groups (POSTERN_LOG_GROUPS, comma-separated; the stack's TraceLogGroups output) to see what happened after receipt")
	}
	ac, err := lambdafn.LoadAWSConfig(ctx, cfg.Backend.AWS)
	if err != nil {
		return nil, err
	}
	logged, err := cwlogs.Read(ctx, cloudwatchlogs.NewFromConfig(ac), groups, id, events[0].Time.Add(-time.Minute))
	if err != nil {
		return nil, err
	}
	events = append(events, logged...)
	sort.SliceStable(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })
	return events, nil
}

// Replay re-enqueues a stored message (see replay).
func Replay(ctx context.Context, cfg *config.Config, log *slog.Logger, id postern.MsgID, route string) (string, error) {
	be, err := openBackend(ctx, cfg, log)
	if err != nil {
		return "", err
	}
	defer be.close()
	st, err := buildStages(cfg, be, log, "")
	if err != nil {
		return "", err
	}
	return replay(ctx, be, st.table, cfg.Limits.MaxHeaderBytes, id, route)
}

// Redrive moves a local queue's dead-lettered jobs back to it. On AWS use
// SQS's own redrive (console, or StartMessageMoveTask), which keeps
// message attributes and needs no consumer.
func Redrive(ctx context.Context, cfg *config.Config, log *slog.Logger, name string) (int, error) {
	if cfg.Backend.Type == "aws" {
		return 0, errors.New("on AWS, redrive with SQS itself: the console's \"Start DLQ redrive\" or `aws sqs start-message-move-task --source-arn <dlq-arn>`")
	}
	be, err := openBackend(ctx, cfg, log)
	if err != nil {
		return 0, err
	}
	defer be.close()
	return redriveLocal(ctx, be.queues, name)
}
