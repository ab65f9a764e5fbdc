package lambdart

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Build compiles the main package pkg into dir/bootstrap as deployment
// does (CGO_ENABLED=0, -tags lambda.norpc: the Runtime API client only, no
// RPC server) but for the host's GOOS and GOARCH, so tests run the same
// code Lambda runs. pkg is anything go build takes: an import path, or a
// directory relative to the working directory. It returns the binary's
// path. Go's build cache makes a repeated build cheap, but not free: build
// once per test binary.
func Build(ctx context.Context, pkg, dir string) (string, error) {
	goBin, err := exec.LookPath("go") // go test puts GOROOT/bin first on PATH
	if err != nil {
		return "", fmt.Errorf("lambdart: build %s: %w", pkg, err)
	}
	out := filepath.Join(dir, "bootstrap")
	cmd := exec.CommandContext(ctx, goBin, "build", "-tags", "lambda.norpc", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("lambdart: go build %s: %w\n%s", pkg, err, msg)
	}
	return out, nil
}
