package cli_test

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/postern/postern/internal/cli"
	"github.com/postern/postern/internal/version"
)

func TestVersionCommandPrintsTheBuild(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"version", "--version"} {
		var out, errb bytes.Buffer
		code := cli.Main(context.Background(), cli.Env{Args: []string{arg}, Getenv: func(string) string { return "" }, Stdout: &out, Stderr: &errb})
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", arg, code, errb.String())
		}
		got := out.String()
		for _, want := range []string{"postern " + version.Version, "commit " + version.Commit, "built " + version.Date, runtime.GOOS + "/" + runtime.GOARCH} {
			if !strings.Contains(got, want) {
				t.Errorf("%s printed %q, want %q in it", arg, got, want)
			}
		}
	}
}
