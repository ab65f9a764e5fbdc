package sqsqueue_test

import (
	"testing"

	"github.com/postern/postern/internal/standin"
)

// The SQS stand-in is fauxqs (see package standin). The package's tests
// share one process, started on first use and stopped here; each test makes
// its own queues in it.
func TestMain(m *testing.M) { standin.Main(m) }

// endpoint returns the stand-in's URL. If it is not installed it skips t,
// or fails it when POSTERN_REQUIRE_STANDINS=1.
func endpoint(t *testing.T) string {
	t.Helper()
	return standin.SQS(t)
}
