// Command dsn is the dsn stage as an AWS Lambda function (provided.al2023,
// binary named bootstrap) fed by its SQS queue. It links only its own
// stage (internal/lambdafn/dsnfn).
package main

import (
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/dsnfn"
)

func main() { lambdafn.Main("dsn", dsnfn.Build) }
