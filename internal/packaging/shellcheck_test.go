package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The maintainer scripts (POSIX sh: dpkg and rpm run them with /bin/sh)
// and the release scripts pass shellcheck, and shellcheck does find faults.
func TestShellcheck(t *testing.T) {
	t.Parallel()
	sc := needTool(t, "shellcheck", "apt-get install shellcheck")
	root := repoRoot(t)
	maint, _ := filepath.Glob(filepath.Join(root, "packaging", "scripts", "*", "*"))
	if len(maint) < 7 {
		t.Fatalf("found only %v maintainer scripts", maint)
	}
	if out, err := exec.Command(sc, append([]string{"--shell=sh"}, maint...)...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck on the maintainer scripts: %v\n%s", err, out)
	}
	bash := []string{filepath.Join(root, "scripts", "release"), filepath.Join(root, "scripts", "ci", "install-dockerfile-lint.sh")}
	if out, err := exec.Command(sc, bash...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck on the release scripts: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "postinst")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\nif [[ $1 == configure ]]; then rm -rf /var/lib/$dir; fi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(sc, "--shell=sh", bad).Run(); err == nil {
		t.Error("shellcheck passed bash tests and an unset variable in a sh script")
	}
}
