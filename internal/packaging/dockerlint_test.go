package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dockerfileUtils is the linter scripts/ci/install-dockerfile-lint.sh
// installs: POSTERN_DOCKERFILE_UTILS, or its default place.
func dockerfileUtils(t *testing.T) string {
	t.Helper()
	p := os.Getenv("POSTERN_DOCKERFILE_UTILS")
	if p == "" {
		p = filepath.Join(repoRoot(t), ".ci", "cache", "dockerfile-utils", "node_modules", ".bin", "dockerfile-utils")
	}
	if _, err := os.Stat(p); err != nil {
		if required() {
			t.Fatalf("no Dockerfile linter at %s: run scripts/ci/install-dockerfile-lint.sh", p)
		}
		t.Skipf("no Dockerfile linter at %s: run scripts/ci/install-dockerfile-lint.sh", p)
	}
	return p
}

// The on-prem Dockerfile passes dockerfile-utils lint without a word, and
// the linter does find faults (so a pass means something).
func TestDockerfileLint(t *testing.T) {
	t.Parallel()
	lint := dockerfileUtils(t)
	df := filepath.Join(repoRoot(t), "packaging", "docker", "Dockerfile")
	if out, err := exec.Command(lint, "lint", df).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("dockerfile-utils lint %s: %v\n%s", df, err, out)
	}
	b, err := os.ReadFile(df)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "Dockerfile")
	if err := os.WriteFile(bad, []byte(strings.Replace(string(b), "\nSTOPSIGNAL SIGTERM\n", "\nSTOPSIGNAL SIGTERM\nSTOPSIGNL SIGTERM\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(lint, "lint", bad).CombinedOutput(); err == nil || !strings.Contains(string(out), "STOPSIGNL") {
		t.Errorf("the linter passed an unknown instruction: %v\n%s", err, out)
	}
}
