package ingest_test

import (
	"testing"

	"github.com/postern/postern/internal/standin"
)

// TestMain stops the S3 and SQS stand-ins BenchmarkAcceptAWS starts.
func TestMain(m *testing.M) { standin.Main(m) }
