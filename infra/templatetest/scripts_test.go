package templatetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// minimalPath makes a PATH holding only the named tools (those that exist
// on this machine), so a script's "tool not found" path can be exercised.
func minimalPath(t *testing.T, tools ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s not on PATH: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runScript(t *testing.T, path string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{path}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return string(out), 0
}

func TestScriptsParse(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	for _, s := range []string{"scripts/build", "scripts/deploy", "scripts/ci/install-cfn-guard.sh"} {
		p := filepath.Join(root, s)
		info, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if info.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", s)
		}
		if out, err := exec.Command("bash", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s: bash -n: %v\n%s", s, err, out)
		}
		if s == "scripts/ci/install-cfn-guard.sh" {
			continue
		}
		out, code := runScript(t, p, nil, "--help")
		if code != 0 || !strings.Contains(out, "Usage: "+s) {
			t.Errorf("%s --help: exit %d\n%s", s, code, out)
		}
		if _, code := runScript(t, p, nil, "--bogus"); code != 2 {
			t.Errorf("%s --bogus: exit %d, want 2", s, code)
		}
	}
}

// TestScriptsNameMissingTools: without sam or docker the scripts stop with
// a message naming the tool and how to get it, not a bare "command not
// found".
func TestScriptsNameMissingTools(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	path := "PATH=" + minimalPath(t, "bash", "dirname", "go")
	for _, c := range []struct {
		script string
		args   []string
		want   string
	}{
		{"scripts/build", []string{"--functions"}, "sam not found on PATH: install the AWS SAM CLI"},
		{"scripts/build", []string{"--image"}, "docker not found on PATH: install Docker"},
		{"scripts/deploy", []string{"--config", "/nonexistent.yaml"}, "/nonexistent.yaml: no such file"},
		{"scripts/deploy", nil, "--config FILE is required"},
	} {
		out, code := runScript(t, filepath.Join(root, c.script), []string{path}, c.args...)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("%s %v: exit %d, output %q; want a failure saying %q", c.script, c.args, code, out, c.want)
		}
	}
}
