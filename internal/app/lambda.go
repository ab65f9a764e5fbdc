package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/dsnfn"
	"github.com/postern/postern/internal/lambdafn/parsefn"
	"github.com/postern/postern/internal/lambdafn/relayfn"
	"github.com/postern/postern/internal/lambdafn/webhookfn"
)

// SQSHandler is what a Lambda function with an SQS event source runs.
type SQSHandler = lambdafn.SQSHandler

// StageBuilds are the per-stage builders, by stage name: what
// functions/<stage>/main.go passes to lambdafn.Main.
var StageBuilds = map[string]lambdafn.Build{
	"parse": parsefn.Build, "webhook": webhookfn.Build, "relay": relayfn.Build, "dsn": dsnfn.Build,
}

// LambdaHandler builds one stage as a Lambda SQS handler on the aws
// backend, as that stage's function does (for checks that start every
// stage from one process; the functions themselves link only their own
// stage through lambdafn.Main).
func LambdaHandler(ctx context.Context, stage string, cfg *config.Config, log *slog.Logger) (SQSHandler, error) {
	build, ok := StageBuilds[stage]
	if !ok {
		return nil, fmt.Errorf("unknown stage %q", stage)
	}
	return lambdafn.Handler(ctx, stage, build, cfg, log)
}
