// Command webhook is the webhook stage as an AWS Lambda function (provided.al2023,
// binary named bootstrap) fed by its SQS queue. It links only its own
// stage (internal/lambdafn/webhookfn).
package main

import (
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/webhookfn"
)

func main() { lambdafn.Main("webhook", webhookfn.Build) }
