// Command parse is the parse stage as an AWS Lambda function (provided.al2023,
// binary named bootstrap) fed by its SQS queue. It links only its own
// stage (internal/lambdafn/parsefn).
package main

import (
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/parsefn"
)

func main() { lambdafn.Main("parse", parsefn.Build) }
