//go:build crash

package crashtest

import (
	"context"
	"os"
	"testing"

	"github.com/postern/postern/internal/cli"
)

// childEnv makes the test binary run as the gateway: the tests re-execute
// themselves so that the gateway is a real process they can SIGKILL.
const childEnv = "POSTERN_CRASHTEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(cli.Main(context.Background(), cli.Env{
			Args: []string{"-config", os.Getenv(childEnv)}, Getenv: os.Getenv,
			Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		}))
	}
	os.Exit(m.Run())
}
