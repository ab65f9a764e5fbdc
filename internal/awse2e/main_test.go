// Package awse2e holds the AWS-mode end-to-end tests: the gateway in AWS mode
// against an S3 stand-in (versitygw) and an SQS stand-in (fauxqs), and the
// real function binaries run under a Lambda Runtime API harness
// (internal/lambdart), fed from the stand-in queues the way Lambda's event
// source mapping feeds them. Everything listens on 127.0.0.1.
package awse2e

import (
	"testing"

	"github.com/postern/postern/internal/standin"
)

func TestMain(m *testing.M) { standin.Main(m) }
