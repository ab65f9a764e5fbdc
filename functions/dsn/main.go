// Command dsn is the dsn stage as an AWS Lambda function (provided.al2023,
// binary named bootstrap) fed by its SQS queue.
package main

import "github.com/postern/postern/internal/app"

func main() { app.LambdaMain("dsn") }
