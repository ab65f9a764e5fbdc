// Command relay is the relay stage as an AWS Lambda function (provided.al2023,
// binary named bootstrap) fed by its SQS queue. It links only its own
// stage (internal/lambdafn/relayfn).
package main

import (
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/relayfn"
)

func main() { lambdafn.Main("relay", relayfn.Build) }
